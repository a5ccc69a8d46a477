"""What a model is, stored in the model itself: read with `describe`, set with `with_metadata`.

Every model built by the registry, trained, saved, logged to MLflow or exported carries:

- `task`: one of `constants.TASKS`;
- `class_names`: the names of its output classes, index = class id;
- `name` and `builder_args`: the registry name and the builder arguments it was built with
  (the variant's defaults merged with the overrides), so `build(name, **builder_args)`
  rebuilds the architecture;
- `input_shape`: `(height, width, channels)`, None for a dimension the model leaves free;
- `preprocessing`: the in-model `ImagePreprocessing` mode (images go in as RGB 0..255);
- `decoder` (detectors): `box_format` (always `"xyxy"` input pixels), `score_threshold`,
  `iou_threshold`, `max_detections`, plus what the family's decoder needs (`family`,
  `num_classes`, and e.g. SSD's `default_boxes` or YOLO v1's `num_boxes`).

The fields live in the model's serialized config (`get_config()["metadata"]`), so they
survive `model.save("x.keras")` + `keras.saving.load_model` (safe mode), MLflow's Keras
flavour (which saves `.keras`) and our exports. A functional model gets them by being
rebuilt, over the same layers, as a `MetadataModel` (a registered `keras.Model` subclass);
our subclassed detectors (`HasMetadata`) store them in their own config, and the fields they
hold as constructor arguments (their post-processing settings) are read from the model.

Example:
    >>> model = with_metadata(models.build("resnet18", num_classes=3),
    ...                       class_names=["cat", "dog", "fox"])
    >>> model.save("resnet.keras")
    >>> describe(keras.saving.load_model("resnet.keras"))["class_names"]
    ['cat', 'dog', 'fox']
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping

import keras
import numpy as np

from kerascv_suite.constants import TASKS
from kerascv_suite.layers.image_preprocessing import ImagePreprocessing

FIELDS = ("task", "class_names", "name", "builder_args", "input_shape", "preprocessing",
          "decoder")
# The post-processing settings every detector's decoder has; the inference call takes them.
DECODER_SETTINGS = ("score_threshold", "iou_threshold", "max_detections")
BOX_FORMAT = "xyxy"
_ATTRIBUTE = "_kcv_metadata"  # a JSON string: immutable, never tracked by Keras


class HasMetadata:
    """Base of our `keras.Model` classes whose `get_config()` stores the metadata.

    Subclasses take a `metadata=None` constructor argument, call
    `with_metadata(self, **(metadata or {}))` in `__init__` and put
    `"metadata": stored_metadata(self)` in `get_config()`. `metadata_facts()` returns the
    fields the model's own configuration determines (they win over stored fields, and
    `with_metadata` refuses to contradict them).
    """

    def metadata_facts(self) -> dict:
        return {}


@keras.saving.register_keras_serializable(package="kerascv_suite")
class MetadataModel(HasMetadata, keras.Model):
    """A functional model whose config also stores its metadata.

    Built by `with_metadata` over the graph of an existing functional model: same layers,
    weights, layer names and parameter count. It revives through Keras' functional
    deserialization (`Model.from_config` passes the extra `metadata` entry to `__init__`).

    Args:
        *args, **kwargs: those of a functional `keras.Model` (`inputs`, `outputs`, `name`).
        metadata: the fields (see the module docstring).
    """

    def __init__(self, *args, metadata=None, **kwargs):
        super().__init__(*args, **kwargs)
        with_metadata(self, **dict(metadata or {}))

    def get_config(self):
        return {**super().get_config(), "metadata": stored_metadata(self)}


# === Reading ===


def stored_metadata(model) -> dict:
    """The fields stored in `model`'s config, JSON-native (lists, not tuples); `{}` if none."""
    text = getattr(model, _ATTRIBUTE, None) if isinstance(model, HasMetadata) else None
    return json.loads(text) if text else {}


def describe(model) -> dict:
    """Everything `model` says about itself; never raises.

    Args:
        model: any `keras.Model` (ours, a `.keras` or MLflow reload, keras.applications...).

    Returns:
        A dict with every key of `FIELDS`: `task` (str or None), `class_names` (list of str
        or None), `name` (registry name or None), `builder_args` (dict, `{}` if unknown),
        `input_shape` (tuple or None), `preprocessing` (str or None), `decoder` (dict or
        None). A model without metadata gives what can be read from it: its input shape,
        and the mode of a top-level `ImagePreprocessing` layer.
    """
    fields = {**_model_facts(model), **stored_metadata(model)}
    facts = _class_facts(model)
    decoder = fields.get("decoder")
    if isinstance(facts.get("decoder"), Mapping):
        decoder = {**(decoder or {}), **facts["decoder"]}
    fields.update(facts)
    fields["decoder"] = decoder
    shape = fields.get("input_shape")
    return {
        "task": fields.get("task"),
        "class_names": list(fields["class_names"]) if fields.get("class_names") else None,
        "name": fields.get("name"),
        "builder_args": dict(fields.get("builder_args") or {}),
        "input_shape": tuple(shape) if shape is not None else None,
        "preprocessing": fields.get("preprocessing"),
        "decoder": dict(decoder) if decoder else None,
    }


def _class_facts(model):
    if not isinstance(model, HasMetadata):
        return {}
    try:
        return _normalize(model.metadata_facts())
    except Exception:  # describe never raises; a half-built model has no facts yet
        return {}


def _model_facts(model):
    """Input shape and preprocessing read from a functional graph."""
    facts = {}
    try:
        facts["input_shape"] = [_dim(d) for d in model.inputs[0].shape[1:]]
    except (AttributeError, IndexError, TypeError, ValueError):
        pass
    try:
        modes = [layer.mode for layer in model.layers if isinstance(layer, ImagePreprocessing)]
    except (AttributeError, TypeError, ValueError):
        modes = []
    if len(modes) == 1:
        facts["preprocessing"] = modes[0]
    return facts


def _dim(value):
    return None if value is None else int(value)


# === Writing ===


def with_metadata(model, **fields):
    """`model` carrying its metadata updated with `fields`.

    `decoder` and `builder_args` are merged key by key into the stored ones; any other field
    replaces the stored value (None clears it).

    Args:
        model: a functional `keras.Model` (a registry model, a keras.applications model...),
            or one of our subclassed detectors.
        **fields: any of `FIELDS`.

    Returns:
        `model` itself when its class stores metadata (`HasMetadata`: our detectors and
        `MetadataModel`); otherwise a `MetadataModel` over the same graph (same layers and
        weights, same name). The new model is not compiled.

    Raises:
        ValueError: an unknown field, a bad value, or a value that contradicts the model
            (e.g. thresholds of a detector whose thresholds are constructor arguments).
        TypeError: a subclassed model that is not ours (it has no graph to rebuild).
    """
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise ValueError(f"Unknown metadata fields {unknown}; the fields are {list(FIELDS)}. "
                         f"Received: {', '.join(unknown)}")
    new = _normalize(fields)
    merged = stored_metadata(model)
    for key, value in new.items():
        if key in ("decoder", "builder_args") and value is not None and merged.get(key):
            value = {**merged[key], **value}
        merged[key] = value
    merged = {k: v for k, v in merged.items() if v is not None}
    if isinstance(model, HasMetadata):
        _check_facts(model, new)
        setattr(model, _ATTRIBUTE, json.dumps(merged, sort_keys=True))
        return model
    try:
        inputs, outputs = model.input, model.output
    except (AttributeError, ValueError) as e:
        raise TypeError(
            "with_metadata rebuilds a functional model over its graph; this model has none "
            f"(a subclassed model must derive from HasMetadata). Received: "
            f"model={type(model).__name__}({model.name!r})") from e
    return MetadataModel(inputs, outputs, name=model.name, trainable=model.trainable,
                         metadata=merged)


def _check_facts(model, fields):
    if not getattr(model, "built", False):
        return  # from __init__: the facts are not set yet
    facts = _class_facts(model)
    for key, value in fields.items():
        fact = facts.get(key)
        if key == "decoder" and isinstance(value, Mapping) and fact:
            clash = {k: v for k, v in value.items() if k in fact and fact[k] != v}
        else:
            clash = {key: value} if fact is not None and value != fact else {}
        if clash:
            raise ValueError(
                f"{type(model).__name__} {model.name!r} determines {key} itself ({fact!r}); "
                f"metadata cannot change it (post-processing settings are arguments of "
                f"the inference call: Detector(model, score_threshold=...)). Received: "
                f"{key}={value!r}")


def _normalize(fields):
    """Validated, JSON-native copies of `fields`."""
    out = {}
    for key, value in fields.items():
        if value is None:
            out[key] = None
        elif key == "task":
            if value not in TASKS:
                raise ValueError(f"task must be one of {TASKS}. Received: task={value!r}")
            out[key] = str(value)
        elif key == "class_names":
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
                raise ValueError("class_names must be a list of strings. "
                                 f"Received: class_names={value!r}")
            out[key] = [str(n) for n in value]
        elif key in ("name", "preprocessing"):
            out[key] = str(value)
        elif key == "input_shape":
            out[key] = [_dim(d) for d in value]
        elif key in ("builder_args", "decoder"):
            if not isinstance(value, Mapping):
                raise ValueError(f"{key} must be a dict. Received: {key}={value!r}")
            out[key] = to_json(value)
            if key == "decoder" and out[key].get("box_format", BOX_FORMAT) != BOX_FORMAT:
                raise ValueError(f"Detectors output {BOX_FORMAT!r} boxes. Received: "
                                 f"decoder={{'box_format': {value['box_format']!r}}}")
        else:
            out[key] = to_json(value)
    return out


def to_json(value):
    """`value` as JSON-native data: tuples become lists, numpy values Python numbers, Keras
    objects their `serialize_keras_object` dict, anything else its `repr`."""
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "get_config"):
        return to_json(keras.saving.serialize_keras_object(value))
    return repr(value)


def decoder_defaults(decoder_class) -> dict:
    """The post-processing defaults (`DECODER_SETTINGS`, `pre_nms_top_k`) of a decoder class's
    constructor, so a builder's metadata states the settings its decoder would use."""
    parameters = inspect.signature(decoder_class.__init__).parameters
    return {k: parameters[k].default for k in (*DECODER_SETTINGS, "pre_nms_top_k")
            if k in parameters and parameters[k].default is not inspect.Parameter.empty}
