"""ImageNet backbones for detectors and segmenters: VGG16 / ResNet-50 weights from the catalog
(or a file) copied into a model's backbone layers by name.

One loader for every family with a VGG16 or ResNet-50 backbone. The backbone layers
(`block1_conv1` ... `block5_conv3`; `conv1_conv` ... `conv4_block6_3_bn`) carry
keras.applications' names in our models, so they are copied as they are; every one of them
present in the model must receive weights of its shape. VGG16's fully connected layers
`fc1` / `fc2` go where the paper puts them (`fc`):

- `"dense"`: onto `fc6` / `fc7` as they are: the Fast / Faster R-CNN box head on 7x7 RoI
  pooling (Girshick 2015, sec. 2.3) and R-CNN's warped-region classifier at 224 px;
- `"conv"`: onto the 7x7 `fc6` and 1x1 `fc7` convolutions, the dense kernels reshaped
  `(7*7*512, 4096) -> (7, 7, 512, 4096)` and `(4096, 4096) -> (1, 1, 4096, 4096)` (FCN, Long
  et al. 2015, sec. 3.1: "fully connected layers can also be viewed as convolutions with
  kernels that cover their entire input regions"; DeconvNet's encoder);
- `"reduced"`: SSD's reduced fc6 / fc7 (Liu et al. 2016, sec. 3: "we convert fc6 and fc7 to
  convolutional layers, subsample parameters from fc6 and fc7 ... and use the à trous
  algorithm"; the reduced VGG16 of DeepLab-LargeFOV / ParseNet that the Caffe
  `ssd_pascal.py` starts from): fc6's 7x7 taps decimated by 3 (rows and columns 0, 3, 6;
  the dilation 6 of the 3x3 conv6 on the stride-16 map spans the same 13 pixels the 7x7
  kernel spanned at stride 32) and every 4th of its 4096 filters -> `(3, 3, 512, 1024)`;
  fc7 keeps every 4th input and output -> `(1, 1, 1024, 1024)`; biases every 4th.

A source without `fc1` / `fc2` (a `..._notop` file) or a model whose fc6 / fc7 have other
shapes (a small box head, a DeconvNet with fewer blocks) keeps its fc6 / fc7 initialization;
one warning line says so.

Sources: `"imagenet"` (the backbone model's default catalog entry, e.g.
`vgg16.keras_in1k`), any catalog entry of that model (`vgg16.tv_in1k`, converted once and
cached), or a local file: a keras.applications `.h5` (read by layer name, nothing built), a
`.keras` model, or a `.weights.h5` of the backbone without its top.

Example:
    >>> model = build("fcn8s", backbone_weights="imagenet")
    >>> model = build("faster_rcnn", backbone_weights="vgg16.tv_in1k", preprocessing="torch")
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re

import numpy as np

from kerascv_suite.weights.catalog import DEFAULT_ALIAS, default_entry, entries, get_entry
from kerascv_suite.weights.errors import WeightsError

logger = logging.getLogger(__name__)

# Weighted layers of each backbone, as keras.applications names them.
BACKBONE_LAYERS = {
    "vgg16": re.compile(r"^block[1-5]_conv[1-3]$"),
    "resnet50": re.compile(r"^conv1_(conv|bn)$|^conv[2-5]_block\d+_[0-3]_(conv|bn)$"),
}
FC_MODES = ("dense", "conv", "reduced")
# (source, target) of VGG16's fully connected layers.
FC_PAIRS = (("fc1", "fc6"), ("fc2", "fc7"))
VGG16_POOL5 = (7, 7, 512)  # what fc1 reads at 224 x 224
SSD_TAP_STEP, SSD_FILTER_STEP = 3, 4


@dataclasses.dataclass(frozen=True)
class BackboneSource:
    """Where backbone weights come from.

    Attributes:
        label: the catalog entry's name or the file's path (for messages).
        backbone: `"vgg16"` or `"resnet50"`.
        entry: the `WeightsEntry`, or None for a file.
        path: the local file, or None for an entry (fetched by `source_file`).
    """

    label: str
    backbone: str
    entry: object = None
    path: str | None = None

    @property
    def preprocessing(self) -> str | None:
        """The preprocessing the weights expect (None for a file: unknown)."""
        return None if self.entry is None else self.entry.preprocessing


def resolve_source(backbone_weights, backbone, model_name) -> BackboneSource:
    """The source `backbone_weights` names for a `model_name` model with backbone `backbone`.

    Raises:
        WeightsError: a backbone without pretrained weights, an entry of another model, or
            neither an entry nor an existing file.
    """
    received = f"Received: backbone_weights={backbone_weights!r}"
    if backbone not in BACKBONE_LAYERS:
        raise WeightsError(
            f"Model {model_name!r} has backbone {backbone!r}; backbone weights exist for "
            f"{' and '.join(BACKBONE_LAYERS)} backbones: build it with backbone='vgg16' or "
            f"'resnet50' (e.g. faster_rcnn, faster_rcnn_resnet50), or train without "
            f"--backbone-weights. {received}")
    if not isinstance(backbone_weights, (str, os.PathLike)):
        raise WeightsError(f"backbone_weights must be 'imagenet', a catalog entry or a file "
                           f"path. {received}")
    value = os.fspath(backbone_weights)
    if os.path.isfile(value):
        return BackboneSource(label=value, backbone=backbone, path=value)
    if value != DEFAULT_ALIAS and value not in entries():
        if value.endswith((".h5", ".keras")) or os.sep in value:
            raise WeightsError(f"No backbone weights file {value!r} for model "
                               f"{model_name!r}: pass an existing file or a catalog entry "
                               f"(`kcv weights list {backbone}*`). {received}")
        get_entry(value)  # raises with close matches
    entry = default_entry(backbone) if value == DEFAULT_ALIAS else get_entry(value)
    if entry.model != backbone:
        fitting = sorted(e.name for e in entries().values() if e.model == backbone)
        raise WeightsError(
            f"Weights {entry.name!r} are {entry.model} weights; model {model_name!r} has a "
            f"{backbone} backbone: pass one of {fitting or ['imagenet']} (or another "
            f"backbone). {received}")
    return BackboneSource(label=entry.name, backbone=backbone, entry=entry)


def check_backbone_args(backbone_weights, backbone, model_name, preprocessing=None,
                        width=1.0, weights=None) -> BackboneSource | None:
    """What a builder checks before building: the source exists and fits the backbone, the
    model is at full width, its `preprocessing` is the one the weights expect, and no whole
    model's `weights` are given too.

    Returns:
        The `BackboneSource` to load after building, or None when `backbone_weights` is None.

    Raises:
        WeightsError: one line naming the model, the weights and what to do.
    """
    if backbone_weights is None:
        return None
    if weights is not None:
        raise WeightsError(
            f"Model {model_name!r}: weights={weights!r} sets every layer, backbone_weights="
            f"{backbone_weights!r} only the backbone of a fresh model: give one of them "
            "(kcv train: --weights or --backbone-weights).")
    source = resolve_source(backbone_weights, backbone, model_name)
    if width != 1:
        raise WeightsError(
            f"Model {model_name!r} at width={width} does not fit {backbone} weights "
            f"{source.label!r} (they fit width 1): build it at width 1 (kcv train: drop "
            f"--width, or --recipe none) or train without --backbone-weights.")
    expected = source.preprocessing
    if expected is not None and preprocessing != expected:
        raise WeightsError(
            f"Weights {source.label!r} expect preprocessing={expected!r}; model "
            f"{model_name!r} was given preprocessing={preprocessing!r}: build it with "
            f"preprocessing={expected!r} (kcv train --backbone-weights sets it).")
    return source


def expected_preprocessing(backbone_weights) -> str | None:
    """The preprocessing a catalog entry's weights expect (None for `"imagenet"`, whose
    entry depends on the backbone, and for files)."""
    value = os.fspath(backbone_weights)
    if value == DEFAULT_ALIAS or os.path.isfile(value) or value not in entries():
        return None
    return get_entry(value).preprocessing


# === Reading the source ===


def source_file(source) -> str:
    """The local Keras weights file of `source`: the file, or the entry's verified download
    (torchvision state dicts converted once and cached, see `models.weights`)."""
    if source.path is not None:
        return source.path
    from kerascv_suite.models.registry import get_spec
    from kerascv_suite.models.weights import pretrained_weights_file

    return pretrained_weights_file(get_spec(source.entry.model), source.entry)


def legacy_group(handle):
    """The layer group of a keras.applications-style (legacy Keras) `.h5` file, or None."""
    group = handle["model_weights"] if "model_weights" in handle else handle
    return group if "layer_names" in group.attrs else None


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_legacy_h5(path, wanted) -> dict[str, list[np.ndarray]]:
    """`{layer name: weights}` for the layers of `wanted` found in a legacy `.h5` file, read
    by name (no model is built; the arrays are read only for those layers)."""
    import h5py

    found = {}
    with h5py.File(path, "r") as handle:
        group = legacy_group(handle)
        for name in (_text(n) for n in group.attrs["layer_names"]):
            if not wanted(name):
                continue
            layer = group[name]
            found[name] = [np.asarray(layer[_text(w)]) for w in layer.attrs["weight_names"]]
    return found


def is_legacy_h5(path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return legacy_group(handle) is not None
    except OSError:
        return False


def model_layers(model):
    """Every layer of `model`, nested functional models walked into."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from model_layers(layer)
        else:
            yield layer


def read_keras_file(path, source, with_top) -> dict[str, list[np.ndarray]]:
    """`{layer name: weights}` of a `.keras` model or a Keras 3 `.weights.h5` file (loaded
    into the backbone model: with its top at the catalog entry's arguments when `with_top`,
    else without it, at any input size)."""
    import keras

    if path.endswith(".keras"):
        model = keras.saving.load_model(path, compile=False)
    else:
        from kerascv_suite.models.registry import get_spec

        spec = get_spec(source.backbone)
        if with_top and source.entry is not None:
            model = spec.build(**source.entry.builder_args())
        else:
            model = spec.build(include_top=False, input_shape=(None, None, 3))
        try:
            model.load_weights(path)
        except ValueError as e:
            raise WeightsError(
                f"{path} does not load into {source.backbone} ({e}); pass a keras.applications "
                f".h5 file, a .keras model or a .weights.h5 saved from {source.backbone} "
                f"without its top.") from None
    return {layer.name: [np.asarray(w) for w in layer.get_weights()]
            for layer in model_layers(model) if layer.weights}


def read_source(source, wanted, with_top) -> dict[str, list[np.ndarray]]:
    """The source's weights of the layers `wanted(name)` accepts."""
    path = source_file(source)
    if is_legacy_h5(path):
        return read_legacy_h5(path, wanted)
    return {name: values for name, values in read_keras_file(path, source, with_top).items()
            if wanted(name)}


# === Mapping the fully connected layers ===


def fc_values(mode, source_name, values, target_shapes):
    """The weights of target layer fc6 / fc7 made from VGG16's `fc1` / `fc2` `values`
    (`[kernel (rows, units), bias (units,)]`) in `mode`, or None when they cannot fit
    `target_shapes` (the layer's weight shapes)."""
    kernel, bias = values
    if mode == "dense":
        out = [kernel, bias]
    elif source_name == "fc1":
        if kernel.shape[0] != int(np.prod(VGG16_POOL5)):
            return None
        spatial = kernel.reshape(*VGG16_POOL5, -1)
        if mode == "conv":
            out = [spatial, bias]
        else:
            out = [spatial[::SSD_TAP_STEP, ::SSD_TAP_STEP, :, ::SSD_FILTER_STEP],
                   bias[::SSD_FILTER_STEP]]
    elif mode == "conv":
        out = [kernel.reshape(1, 1, *kernel.shape), bias]
    else:
        out = [kernel[::SSD_FILTER_STEP, ::SSD_FILTER_STEP][None, None],
               bias[::SSD_FILTER_STEP]]
    if [tuple(v.shape) for v in out] != [tuple(s) for s in target_shapes]:
        return None
    return [np.ascontiguousarray(v) for v in out]


# === Loading ===


def load_backbone_weights(model, backbone_weights, backbone, fc=None, layers=None,
                          model_name=None) -> list[str]:
    """Copies backbone weights into `model` in place.

    Args:
        model: the model (used for its layers and its name).
        backbone_weights: `"imagenet"`, a catalog entry of `backbone`'s model, a
            `BackboneSource`, or a file (see the module docstring).
        backbone: `"vgg16"` or `"resnet50"`.
        fc: None (backbone layers only), or how VGG16's fc1 / fc2 map onto the model's fc6 /
            fc7 (`FC_MODES`; VGG16 only).
        layers: the layers to fill (default: every layer of `model`, nested functional
            models included); a subclassed detector passes its backbone's and head's.
        model_name: the name errors give (default `model.name`).

    Returns:
        The names of the layers that received weights.

    Raises:
        WeightsError: a source that does not fit the backbone (a layer missing from it, or
            of another shape: a model at another width), or no backbone layer in `model`.
    """
    model_name = model_name or model.name
    source = (backbone_weights if isinstance(backbone_weights, BackboneSource)
              else resolve_source(backbone_weights, backbone, model_name))
    if fc is not None and (fc not in FC_MODES or backbone != "vgg16"):
        raise WeightsError(f"fc must be None or one of {FC_MODES} (VGG16 only). Received: "
                           f"fc={fc!r}, backbone={backbone!r}")
    targets = {layer.name: layer for layer in (layers if layers is not None
                                               else model_layers(model)) if layer.weights}
    pattern = BACKBONE_LAYERS[backbone]
    names = [name for name in targets if pattern.match(name)]
    if not names:
        raise WeightsError(f"Model {model_name!r} has no {backbone} layers to take "
                           f"{source.label!r}. Received: backbone={backbone!r}")
    fc_pairs = [(s, t) for s, t in FC_PAIRS if fc is not None and t in targets]
    fc_sources = {s for s, _ in fc_pairs}
    found = read_source(source, lambda n: bool(pattern.match(n)) or n in fc_sources,
                        with_top=bool(fc_pairs))
    updates = []
    for name in names:
        layer = targets[name]
        expected = [tuple(w.shape) for w in layer.weights]
        values = found.get(name)
        if values is None:
            raise WeightsError(f"{source.label!r} has no layer {name!r} for model "
                               f"{model_name!r}: not {backbone} weights? Pass a {backbone} "
                               "entry or file.")
        if [tuple(v.shape) for v in values] != expected:
            raise WeightsError(
                f"Layer {name!r} of model {model_name!r} {expected} does not fit "
                f"{source.label!r} {[tuple(v.shape) for v in values]}: build the model at "
                f"width 1 with the {backbone} backbone, or train without --backbone-weights.")
        updates.append((layer, values))
    fresh = []
    for source_name, target in fc_pairs:
        layer = targets[target]
        values = found.get(source_name)
        mapped = None if values is None else fc_values(
            fc, source_name, values, [w.shape for w in layer.weights])
        if mapped is None:
            fresh.append(target)
        else:
            updates.append((layer, mapped))
    for layer, values in updates:
        layer.set_weights(values)
    if fresh:
        logger.warning("%s: %s keep their initialization (%s has no fc1/fc2 of the shapes "
                       "they need); %d backbone layers loaded", model_name, ", ".join(fresh),
                       source.label, len(names))
    return [layer.name for layer, _ in updates]
