"""Converting torchvision's SSD300 (`ssd300_vgg16`) state dicts into our `ssd300_coco`.

torchvision's SSD300 has our SSD300's layers (VGG16 base with ceil-mode pool3, dilated fc6,
1x1 fc7, conv8 .. conv11 extras, one 3x3 offset and one 3x3 class head per source map, the
same `(anchor, column)` channel order); the tensors move as in `torch_convert` (OIHW ->
HWIO), `backbone.scale_weight` becomes conv4_3_norm's gamma, and two things are adapted:

- Classes. torchvision predicts `K` scores per box with the background at 0. A model whose
  conf heads have `K + 1` scores per box (our `ssd300_coco`: 91 COCO id slots after the
  background) gets torchvision's label `k` at our class id `k`; the extra slot, our class 0
  (torchvision's background label, no COCO category), gets a zero kernel and a
  `PINNED_LOGIT` bias, so it never scores (its softmax term underflows to 0 and the other
  scores are torchvision's exactly). A model with `K` scores per box gets label `k` at class
  `k - 1` (e.g. a 21-label VOC SSD -> our 20 classes).
- Default boxes. torchvision's DefaultBoxGenerator clamps box widths and heights to the
  image (`clip=True`); where our default boxes differ from torchvision's by a fixed size
  ratio with the same centres (conv11_2's ratio-2 boxes: 369 vs 300 px), the offset head is
  reparametrized so the decoded boxes stay torchvision's: `dx' = dx * w_tv / w_ours`,
  `dw' = dw + 5 * log(w_tv / w_ours)` (box coder weights 10, 10, 5, 5), likewise y / h.

Example:
    >>> state = read_state_dict("ssd300_vgg16_coco-b556d3b4.pth")
    >>> convert_ssd300_vgg16(build("ssd300_coco"), state)
"""

from __future__ import annotations

import math

import numpy as np

from kerascv_suite.weights.errors import WeightsError
from kerascv_suite.weights.torch_convert import IGNORED_SUFFIXES, layer_values, set_complete

# A logit no real score reaches: exp(PINNED_LOGIT - max logit) is 0 in float32 (and fits
# float16, for mixed precision).
PINNED_LOGIT = -1e4
# torchvision's SSD BoxCoder weights (wx, wy, ww, wh).
BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
LOC_SUFFIX, CONF_SUFFIX = "_mbox_loc", "_mbox_conf"


def torchvision_default_box_sizes(scales, aspect_ratios, image_size, clip=True):
    """`(w, h)` in pixels of each box type per map, as torchvision's DefaultBoxGenerator.

    Args:
        scales: m + 1 scales (fractions of the image), e.g. `ssd.TORCHVISION_SSD_SCALES`.
        aspect_ratios: per map, the extra ratios (> 1).
        image_size: input side in pixels.
        clip: clamp widths and heights to the image (torchvision's default).

    Returns:
        A list (one per map) of `(num_box_types, 2)` float arrays, in torchvision's (and our)
        order: s_k, sqrt(s_k s_k+1), then (s_k sqrt r, s_k / sqrt r) and its transpose.
    """
    sizes = []
    for k, ratios in enumerate(aspect_ratios):
        s_k, s_prime = scales[k], math.sqrt(scales[k] * scales[k + 1])
        pairs = [(s_k, s_k), (s_prime, s_prime)]
        for r in ratios:
            pairs += [(s_k * math.sqrt(r), s_k / math.sqrt(r)),
                      (s_k / math.sqrt(r), s_k * math.sqrt(r))]
        pairs = np.asarray(pairs, np.float64)
        sizes.append((np.clip(pairs, 0.0, 1.0) if clip else pairs) * image_size)
    return sizes


def our_default_box_sizes(default_boxes):
    """`(w, h)` and centres of each box type per map of our `ssd_default_boxes(**default_boxes)`.

    Returns:
        A list (one per map) of `(sizes (num_box_types, 2), centres (cells, num_box_types, 2))`.
    """
    from keras import ops

    from kerascv_suite.bounding_box import ssd_default_boxes

    boxes = np.asarray(ops.convert_to_numpy(ssd_default_boxes(**default_boxes)), np.float64)
    out, start = [], 0
    for size, ratios in zip(default_boxes["feature_map_sizes"], default_boxes["aspect_ratios"]):
        types = 2 + 2 * len(ratios)
        level = boxes[start : start + size * size * types].reshape(size * size, types, 4)
        start += size * size * types
        out.append((level[0, :, 2:] - level[0, :, :2], (level[..., :2] + level[..., 2:]) / 2))
    return out


def offset_reparametrization(default_boxes, scales):
    """Per map, `(num_box_types, 2)` ratios `(w_tv / w_ours, h_tv / h_ours)` of torchvision's
    default boxes to ours (1 where they agree).

    Raises:
        WeightsError: centres that differ from torchvision's (`(j + 0.5) * step`), or sizes
            that differ by other than one ratio per box type.
    """
    theirs = torchvision_default_box_sizes(scales, default_boxes["aspect_ratios"],
                                           default_boxes["image_size"])
    ratios = []
    for level, (tv_sizes, (sizes, centres)) in enumerate(zip(theirs, our_default_box_sizes(
            default_boxes))):
        size, step = default_boxes["feature_map_sizes"][level], default_boxes["steps"][level]
        grid = (np.arange(size) + 0.5) * step
        expected = np.stack(np.meshgrid(grid, grid, indexing="xy"), -1).reshape(-1, 1, 2)
        if sizes.shape != tv_sizes.shape or not np.allclose(centres, expected, atol=1e-3):
            raise WeightsError(f"Default boxes of map {level} are not torchvision's (centres "
                               f"or box types differ). Received: default_boxes={default_boxes}")
        ratios.append(tv_sizes / sizes)
    return ratios


def ssd300_vgg16_pairs(model, state):
    """`(our layer, torchvision prefix)` of every convolution: the VGG base and extras in
    order (`backbone.features.*`, `backbone.extra.*`), then the heads per source map
    (`head.regression_head.module_list.i` / `head.classification_head.module_list.i`)."""
    import keras

    convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    ours = [n for n in convs if not n.endswith((LOC_SUFFIX, CONF_SUFFIX))]
    theirs = [key.removesuffix(".weight") for key in state
              if key.startswith("backbone.") and key.endswith(".weight") and state[key].ndim == 4]
    if len(ours) != len(theirs):
        raise WeightsError(f"The state dict has {len(theirs)} base and extra convolutions, "
                           f"model {model.name!r} {len(ours)}: not an SSD300 of this layout?")
    pairs = list(zip(ours, theirs))
    for i, loc in enumerate(n for n in convs if n.endswith(LOC_SUFFIX)):
        source = loc.removesuffix(LOC_SUFFIX)
        pairs += [(loc, f"head.regression_head.module_list.{i}"),
                  (f"{source}{CONF_SUFFIX}", f"head.classification_head.module_list.{i}")]
    return pairs


def conf_values(values, anchors, columns):
    """Our conf head `[kernel (3, 3, C, anchors * columns), bias]` from torchvision's
    `anchors * K` channels: the same when `columns == K`, with a pinned slot after the
    background when `columns == K + 1` (see the module docstring)."""
    kernel, bias = values
    theirs = bias.shape[0] // anchors
    if columns == theirs:
        return values
    if columns != theirs + 1:
        raise WeightsError(f"Conf head: torchvision predicts {theirs} scores per box, the "
                           f"model {columns}; build it with num_classes={theirs} (our "
                           f"background + {theirs} class id slots) or {theirs - 1}.")
    kernel = kernel.reshape(*kernel.shape[:3], anchors, theirs)
    bias = bias.reshape(anchors, theirs)
    kernel = np.concatenate([kernel[..., :1], np.zeros_like(kernel[..., :1]), kernel[..., 1:]],
                            axis=-1)
    bias = np.concatenate([bias[:, :1], np.full_like(bias[:, :1], PINNED_LOGIT), bias[:, 1:]],
                          axis=-1)
    return [kernel.reshape(*kernel.shape[:3], -1), bias.reshape(-1)]


def loc_values(values, ratios):
    """Our offset head from torchvision's, reparametrized for default boxes whose sizes are
    `ratios` (`(anchors, 2)`, torchvision's / ours) of torchvision's."""
    kernel, bias = (np.array(v, np.float64) for v in values)
    kernel = kernel.reshape(*kernel.shape[:3], -1, 4)
    bias = bias.reshape(-1, 4)
    for axis in (0, 1):  # x / w, then y / h
        ratio = ratios[:, axis]
        kernel[..., axis] *= ratio
        bias[:, axis] *= ratio
        bias[:, axis + 2] += BOX_WEIGHTS[axis + 2] * np.log(ratio)
    return [kernel.reshape(*kernel.shape[:3], -1).astype(np.float32),
            bias.reshape(-1).astype(np.float32)]


def convert_ssd300_vgg16(model, state, scales=None) -> list[str]:
    """Sets an SSD300 model's weights from torchvision's `ssd300_vgg16` state dict in place.

    Args:
        model: an SSD of width 1 built by our `ssd` builder with torchvision's default-box
            centres (`ssd300_coco`; num_classes 91 for the COCO checkpoint).
        state: `{name: array}`, e.g. from `read_state_dict`.
        scales: torchvision's default-box scales; None reads `ssd.TORCHVISION_SSD_SCALES`.

    Returns:
        Names of the layers that received weights (every weighted layer of `model`).

    Raises:
        WeightsError: a tensor without a layer or a layer without a tensor, shapes that do
            not fit, a class count that fits neither mapping, or default boxes whose centres
            are not torchvision's.
    """
    from kerascv_suite.models import describe
    from kerascv_suite.models.detection.ssd import TORCHVISION_SSD_SCALES

    state = {k: np.asarray(v) for k, v in state.items() if not k.endswith(IGNORED_SUFFIXES)}
    decoder = describe(model)["decoder"] or {}
    if decoder.get("family") != "ssd":
        raise WeightsError(f"convert_ssd300_vgg16 takes one of our SSD models. Received: "
                           f"model={model.name!r}")
    default_boxes = {k: (tuple(map(tuple, v)) if k == "aspect_ratios" else v)
                     for k, v in decoder["default_boxes"].items()}
    ratios = iter(offset_reparametrization(default_boxes, scales or TORCHVISION_SSD_SCALES))
    layers = {layer.name: layer for layer in model.layers}
    updates, used = [], set()
    for name, prefix in ssd300_vgg16_pairs(model, state):
        if name not in layers:
            raise WeightsError(f"Model {model.name!r} has no layer {name!r} for {prefix!r}.")
        layer = layers[name]
        values, keys = layer_values(model, layer, prefix, state)
        if name.endswith(LOC_SUFFIX):
            values = loc_values(values, next(ratios))
        elif name.endswith(CONF_SUFFIX):
            anchors = layers[name.replace(CONF_SUFFIX, LOC_SUFFIX)].filters // 4
            values = conf_values(values, anchors, layer.filters // anchors)
        updates.append((layer, values))
        used.update(keys)
    if "conv4_3_norm" in layers and "backbone.scale_weight" in state:
        updates.append((layers["conv4_3_norm"], [state["backbone.scale_weight"]]))
        used.add("backbone.scale_weight")
    for layer, values in updates:
        expected = [tuple(w.shape) for w in layer.weights]
        if [tuple(v.shape) for v in values] != expected:
            raise WeightsError(f"Layer {layer.name!r}: shapes {[v.shape for v in values]} from "
                               f"the state dict do not fit {expected} (width 1, SSD300?).")
    return sorted(set_complete(model, layers, updates, sorted(set(state) - used),
                               "ssd300_vgg16"))
