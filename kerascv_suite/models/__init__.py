"""Model builders and the registry.

Example:
    >>> from kerascv_suite import models
    >>> models.list_models("vgg*")
    >>> model = models.build("resnet50", num_classes=10, input_shape=(64, 64, 3))
"""

from kerascv_suite.models import classification  # noqa: F401  (registers the families)
from kerascv_suite.models import detection  # noqa: F401
from kerascv_suite.models import segmentation  # noqa: F401
from kerascv_suite.models.classification.ensemble import ensemble
from kerascv_suite.models.registry import (
    TASKS,
    ModelSpec,
    build,
    get_spec,
    list_models,
    register_model,
)
from kerascv_suite.models.weights import load_weights

__all__ = [
    "TASKS",
    "ModelSpec",
    "build",
    "ensemble",
    "get_spec",
    "list_models",
    "load_weights",
    "register_model",
]
