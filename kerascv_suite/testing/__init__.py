"""Test harness shared by the project's tests and by users testing their own layers and models."""

from kerascv_suite.testing.test_case import run_layer_test, run_model_test

__all__ = ["run_layer_test", "run_model_test"]
