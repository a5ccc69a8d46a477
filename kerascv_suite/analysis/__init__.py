"""Model analysis: per-layer parameters, multiply-accumulates, receptive field and jump."""

from kerascv_suite.analysis.summary import LayerStats, ModelStats, analyze_model, format_table

__all__ = ["LayerStats", "ModelStats", "analyze_model", "format_table"]
