"""Model registry: one builder per family, variants as data.

Families register their variants with `register_model`; users call `build(name, **overrides)`
and `list_models(pattern, task)`, in the spirit of timm's `create_model` / `list_models`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from kerascv_suite.constants import TASKS

__all__ = ["TASKS", "ModelSpec", "build", "get_spec", "is_registered", "list_models",
           "register_model"]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A registered variant.

    Attributes:
        name: registry name, e.g. `"vgg16"`.
        builder: the family builder; called as `builder(**{**defaults, **overrides})`.
        task: one of `TASKS`.
        defaults: the variant's arguments (the "data" that makes it this variant).
        paper: citation of the paper the variant follows.
        num_params: Keras-counted parameters of `build(name)` with its defaults (BN moving
            statistics and biases count). The registry-wide test builds every model and asserts
            this number, so `kcv models` can print it without building anything.
        test_overrides: small overrides (input size, classes) for the fast smoke tests.
    """

    name: str
    builder: Callable[..., Any]
    task: str
    defaults: Mapping[str, Any]
    paper: str
    num_params: int | None = None
    test_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def build(self, /, **overrides):
        """Builds the variant; the model carries its metadata (see `models.describe`).

        `weights="imagenet"` or a catalog entry name loads pretrained weights by name
        (`models.weights.build_pretrained`); any other `weights` goes to the builder.
        """
        from kerascv_suite.models.metadata import with_metadata
        from kerascv_suite.weights import is_catalog_weights

        if is_catalog_weights(overrides.get("weights")):
            from kerascv_suite.models.weights import build_pretrained

            return build_pretrained(self, overrides.pop("weights"), **overrides)
        if overrides.get("backbone_weights") is not None:
            overrides = self._with_backbone_preprocessing(overrides)
        arguments = {**self.defaults, **overrides}
        return with_metadata(self.builder(**arguments), **self.metadata(arguments))

    def _with_backbone_preprocessing(self, overrides) -> dict:
        """`overrides` with the preprocessing `backbone_weights` expect (unless given)."""
        if "backbone_weights" not in inspect.signature(self.builder).parameters:
            raise ValueError(
                f"Model {self.name!r} has no VGG16 or ResNet-50 backbone to load "
                f"`backbone_weights` into; the detectors and segmenters that have one take it "
                f"(e.g. faster_rcnn, ssd300, fcn8s, segnet). Received: "
                f"backbone_weights={overrides['backbone_weights']!r}")
        if "preprocessing" in overrides:
            return overrides
        from kerascv_suite.weights.backbone import expected_preprocessing

        expected = expected_preprocessing(overrides["backbone_weights"])
        return overrides if expected is None else {**overrides, "preprocessing": expected}

    def metadata(self, arguments) -> dict:
        """The metadata fields of this variant built with `arguments` (defaults + overrides):
        task, registry name, builder arguments, and the input shape and preprocessing they
        (or the builder's defaults) give."""
        from kerascv_suite.models.metadata import to_json

        fields = {"task": self.task, "name": self.name, "builder_args": to_json(arguments)}
        for key in ("input_shape", "preprocessing"):
            value = arguments.get(key, self._builder_default(key))
            if value is not None:
                fields[key] = value
        return fields

    def _builder_default(self, argument):
        parameter = inspect.signature(self.builder).parameters.get(argument)
        if parameter is None or parameter.default is inspect.Parameter.empty:
            return None
        return parameter.default

    @property
    def input_shape(self) -> tuple:
        """The reference input shape: the variant's `input_shape`, else the builder's default."""
        shape = self.defaults.get("input_shape") or self._builder_default("input_shape")
        if shape is None:
            raise ValueError(f"Model {self.name!r} declares no reference input_shape.")
        return tuple(shape)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    builder: Callable[..., Any],
    /,
    *,
    task: str,
    paper: str,
    num_params: int | None = None,
    test_overrides: Mapping[str, Any] | None = None,
    **defaults: Any,
) -> ModelSpec:
    """Registers a variant of a family builder under `name`.

    Example:
        >>> register_model("vgg16_small", vgg, task="classification", paper="...",
        ...                config="D", input_shape=(64, 64, 3))
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}. Received: task={task!r}")
    if name in _REGISTRY:
        raise ValueError(f"A model named {name!r} is already registered.")
    spec = ModelSpec(
        name=name,
        builder=builder,
        task=task,
        defaults=MappingProxyType(dict(defaults)),
        paper=paper,
        num_params=num_params,
        test_overrides=MappingProxyType(dict(test_overrides or {})),
    )
    _REGISTRY[name] = spec
    return spec


def get_spec(name: str) -> ModelSpec:
    """Returns the `ModelSpec` registered under `name`, with close matches on a miss."""
    try:
        return _REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown model {name!r}.{hint} See `kcv models` or list_models(). "
            f"Received: name={name!r}"
        ) from None


def is_registered(name: str) -> bool:
    """Whether a model is registered under `name`."""
    return name in _REGISTRY


def build(name: str, /, **overrides: Any):
    """Builds the registered model `name`; `overrides` win over the variant's defaults.

    `name` is positional-only, so `build("resnet50", name="my_resnet")` renames the model.
    The model carries its metadata (`models.describe(model)`): task, registry name, builder
    arguments (defaults merged with overrides), input shape, preprocessing, and for
    detectors the decoder's default settings.

    `weights="imagenet"` (the model's default catalog entry) or `weights="<entry>"` (see
    `kcv weights list`) loads published pretrained weights: downloaded once into the Keras
    cache, hash-verified, converted once (torchvision) and cached; the model gets the
    preprocessing the weights expect. Another `num_classes` keeps the backbone and builds a
    new head.

    Example:
        >>> model = build("vgg16", num_classes=10, input_shape=(64, 64, 3))
        >>> resnet = build("resnet18", weights="imagenet")  # torchvision's ImageNet weights
    """
    return get_spec(name).build(**overrides)


def list_models(pattern: str | None = None, task: str | None = None) -> list[str]:
    """Sorted names of registered models, filtered by a glob `pattern` and/or `task`."""
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}. Received: task={task!r}")
    names = [
        n
        for n, spec in _REGISTRY.items()
        if (pattern is None or fnmatch.fnmatch(n, pattern))
        and (task is None or spec.task == task)
    ]
    return sorted(names)
