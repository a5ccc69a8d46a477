"""Model builders and the registry.

Example:
    >>> from kerascv_suite import models
    >>> models.list_models("vgg*")
    >>> model = models.build("resnet50", num_classes=10, input_shape=(64, 64, 3))
    >>> models.describe(model)["task"]  # what the model is: see `models.metadata`
    'classification'
"""

from kerascv_suite.models import classification  # noqa: F401  (registers the families)
from kerascv_suite.models import detection  # noqa: F401
from kerascv_suite.models import segmentation  # noqa: F401
from kerascv_suite.models import recipe_variants  # noqa: F401  (after the families it extends)
from kerascv_suite.models.classification.ensemble import ensemble
from kerascv_suite.models.metadata import MetadataModel, describe, with_metadata
from kerascv_suite.models.registry import (
    TASKS,
    ModelSpec,
    build,
    get_spec,
    is_registered,
    list_models,
    register_model,
)
from kerascv_suite.models.weights import load_weights

__all__ = [
    "TASKS",
    "MetadataModel",
    "ModelSpec",
    "build",
    "describe",
    "ensemble",
    "get_spec",
    "is_registered",
    "list_models",
    "load_weights",
    "register_model",
    "with_metadata",
]
