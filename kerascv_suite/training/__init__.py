"""Training engine: the fit loop with checkpoints and resume, MLflow tracking, fine-tuning.

Names are resolved on first use (PEP 562), so importing `kerascv_suite.training` (or a
config module that needs its constants) does not import Keras; `kcv --help` stays fast.
`distribute` (distribution strategies) is imported only when a run asks for it.
"""

import importlib

_EXPORTS = {
    "EpochCheckpoint": "callbacks",
    "NanGuard": "callbacks",
    "TrainingDiverged": "errors",
    "fit": "engine",
    "apply_freeze": "finetune",
    "build_finetune_model": "finetune",
    "freeze_layer_names": "finetune",
    "unfreeze_all": "finetune",
    "OPTIMIZERS": "optim",
    "SCHEDULES": "optim",
    "make_optimizer": "optim",
    "make_schedule": "optim",
    "RunState": "state",
    "latest_run_dir": "state",
    "next_run_dir": "state",
    "Tracker": "tracking",
    "TrackingUnavailable": "errors",
    "probe_store": "tracking",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__():
    return __all__
