"""Converting torchvision state dicts into our Keras models, layer by layer.

Each layout (`LAYOUTS`) pairs our layer names with torchvision's module prefixes; `assign`
then moves the tensors: convolution kernels OIHW -> HWIO, dense kernels transposed (their rows
permuted from NCHW to NHWC flattening order where a `Flatten` precedes them), a missing bias
(torchvision's ResNet has no conv biases) as zeros, BatchNorm weight / bias / running mean /
running variance as gamma / beta / moving mean / moving variance. Every tensor of the state
dict must find a layer and every weighted layer a tensor, so a layout that does not fit fails
with the names, never silently; the only tensors left out are those of `TRAINING_ONLY`
(GoogLeNet's auxiliary heads, which torchvision itself drops in eval).

Example:
    >>> state = read_state_dict("resnet18-f37072fd.pth")
    >>> convert_state_dict(build("resnet18", preprocessing="torch"), state, "resnet")
"""

from __future__ import annotations

import re

import numpy as np

from kerascv_suite.weights.errors import WeightsError

IGNORED_SUFFIXES = ("num_batches_tracked",)


def read_state_dict(path) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch state dict file as float32 numpy arrays.

    Loaded with `torch.load(..., weights_only=True)`: tensors only, no pickled code runs.
    """
    try:
        import torch
    except ImportError:
        raise WeightsError(
            "Reading PyTorch checkpoints needs torch: pip install 'kerascv-suite[torch]'. "
            f"Received: {path}"
        ) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"Could not read {path} as a PyTorch state dict: {e}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(hasattr(v, "numpy") for v in state.values()):
        raise WeightsError(f"{path} is not a state dict (a mapping of names to tensors).")
    return {
        key: value.detach().to(torch.float32).numpy()
        for key, value in state.items()
        if not key.endswith(IGNORED_SUFFIXES)
    }


def module_prefixes(state, group):
    """Module prefixes `"{group}.{i}"` of `state` in the order of their index `i`."""
    pattern = re.compile(rf"^{re.escape(group)}\.(\d+)\.")
    indices = sorted({int(m.group(1)) for key in state if (m := pattern.match(key))})
    return [f"{group}.{i}" for i in indices]


def vgg_pairs(model, state):
    """torchvision VGG (with or without batch norm): `features.i` convolutions and BN in order
    onto our `block*_conv*` / BN layers, `classifier.0/3/6` onto `fc1`, `fc2`, `predictions`."""
    import keras

    ours = [layer.name for layer in model.layers
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.BatchNormalization))]
    theirs = module_prefixes(state, "features")
    if len(ours) != len(theirs):
        raise WeightsError(f"The state dict has {len(theirs)} feature layers, model "
                           f"{model.name!r} {len(ours)}: another VGG configuration?")
    pairs = list(zip(ours, theirs))
    names = {layer.name for layer in model.layers}
    for name, prefix in (("fc1", "classifier.0"), ("fc2", "classifier.3"),
                         ("predictions", "classifier.6")):
        if name in names:
            pairs.append((name, prefix))
    return pairs


def squeezenet_pairs(model, state):
    """torchvision SqueezeNet 1.0 / 1.1: `features.0` onto `conv1`, the fire modules in order
    onto `fire2` ... `fire9`, `classifier.1` onto `conv10`."""
    fires = [p for p in module_prefixes(state, "features") if f"{p}.squeeze.weight" in state]
    pairs = [("conv1", "features.0")]
    for number, prefix in enumerate(fires, start=2):
        for part in ("squeeze", "expand1x1", "expand3x3"):
            suffix = "squeeze1x1" if part == "squeeze" else part
            pairs.append((f"fire{number}_{suffix}", f"{prefix}.{part}"))
    if "conv10" in {layer.name for layer in model.layers}:
        pairs.append(("conv10", "classifier.1"))
    return pairs


def resnet_pairs(model, state):
    """torchvision ResNet: `conv1`/`bn1`, `layer{s}.{b}.conv{k}`/`bn{k}` and `downsample.0/1`
    onto keras.applications' names (`conv{s+1}_block{b+1}_{k}_conv`, `..._0_conv`), `fc` onto
    `predictions`."""
    del model
    pairs = [("conv1_conv", "conv1"), ("conv1_bn", "bn1")]
    pattern = re.compile(r"^layer(\d)\.(\d+)\.(conv|bn)(\d)\.weight$")
    downsample = re.compile(r"^layer(\d)\.(\d+)\.downsample\.([01])\.weight$")
    for key in state:
        if m := pattern.match(key):
            stage, block, kind, k = int(m[1]), int(m[2]), m[3], m[4]
            pairs.append((f"conv{stage + 1}_block{block + 1}_{k}_{kind}",
                          f"layer{stage}.{block}.{kind}{k}"))
        elif m := downsample.match(key):
            stage, block, k = int(m[1]), int(m[2]), m[3]
            kind = "conv" if k == "0" else "bn"
            pairs.append((f"conv{stage + 1}_block{block + 1}_0_{kind}",
                          f"layer{stage}.{block}.downsample.{k}"))
    if "fc.weight" in state:
        pairs.append(("predictions", "fc"))
    return pairs


def alexnet_pairs(model, state):
    """torchvision AlexNet ("one weird trick"): `features.0/3/6/8/10` onto `conv1` ...
    `conv5`, `classifier.1/4/6` onto `fc6`, `fc7`, `predictions`."""
    del state
    pairs = [(f"conv{i}", f"features.{index}") for i, index in enumerate((0, 3, 6, 8, 10), 1)]
    names = {layer.name for layer in model.layers}
    for name, prefix in (("fc6", "classifier.1"), ("fc7", "classifier.4"),
                         ("predictions", "classifier.6")):
        if name in names:
            pairs.append((name, prefix))
    return pairs


# torchvision GoogLeNet's BasicConv2d modules -> our `conv_bn_relu` names (googlenet_tv).
GOOGLENET_STEM = {"conv1": "conv1_7x7_s2", "conv2": "conv2_3x3_reduce", "conv3": "conv2_3x3"}
GOOGLENET_BRANCHES = {"branch1": "1x1", "branch2.0": "3x3_reduce", "branch2.1": "3x3",
                      "branch3.0": "5x5_reduce", "branch3.1": "5x5", "branch4.1": "pool_proj"}


def googlenet_pairs(model, state):
    """torchvision GoogLeNet: `conv1..3` and `inception{3a..5b}.branch*` (each `.conv` and
    `.bn`) onto googlenet_tv's `{name}_conv` / `{name}_bn`, `fc` onto `predictions`."""
    pairs = []
    for theirs, ours in GOOGLENET_STEM.items():
        pairs += [(f"{ours}_conv", f"{theirs}.conv"), (f"{ours}_bn", f"{theirs}.bn")]
    stages = sorted({m[1] for key in state if (m := re.match(r"^inception(\w\w)\.", key))})
    for stage in stages:
        for theirs, ours in GOOGLENET_BRANCHES.items():
            pairs += [(f"inception_{stage}_{ours}_conv", f"inception{stage}.{theirs}.conv"),
                      (f"inception_{stage}_{ours}_bn", f"inception{stage}.{theirs}.bn")]
    if "predictions" in {layer.name for layer in model.layers}:
        pairs.append(("predictions", "fc"))
    return pairs


LAYOUTS = {"vgg": vgg_pairs, "squeezenet": squeezenet_pairs, "resnet": resnet_pairs,
           "alexnet": alexnet_pairs, "googlenet": googlenet_pairs}
# Tensor prefixes a layout may leave out: torchvision's googlenet() loads its checkpoint with
# the auxiliary heads and then deletes them (`model.aux1 = None` when aux_logits is False).
TRAINING_ONLY = {"googlenet": ("aux1.", "aux2.")}


def flatten_input_shape(model, layer):
    """`(h, w, c)` of the `Flatten` feeding `layer` (directly or through dropout), or None
    when no flatten precedes it."""
    import keras

    flattens = [candidate for candidate in model.layers
                if isinstance(candidate, keras.layers.Flatten)]
    for flatten in flattens:
        features = flatten.output
        # Dropout keeps the features' order (torchvision's AlexNet classifier starts with one).
        for candidate in model.layers:
            if isinstance(candidate, keras.layers.Dropout) and candidate.input is features:
                features = candidate.output
        if features is layer.input:
            shape = tuple(flatten.input.shape[1:])
            return shape if len(shape) == 3 else None
    return None


def layer_values(model, layer, prefix, state):
    """The Keras weights of `layer` from torchvision module `prefix` of `state`.

    Returns:
        `(values, used_keys)`.
    """
    import keras

    def take(name):
        key = f"{prefix}.{name}"
        if key not in state:
            raise WeightsError(f"The state dict has no {key!r} for layer {layer.name!r}.")
        used.append(key)
        return state[key]

    used = []
    if isinstance(layer, keras.layers.BatchNormalization):
        values = [take("weight"), take("bias"), take("running_mean"), take("running_var")]
        return values, used
    kernel = take("weight")
    bias_key = f"{prefix}.bias"
    bias = take("bias") if bias_key in state else np.zeros(kernel.shape[0], np.float32)
    if isinstance(layer, keras.layers.Conv2D):
        kernel = kernel.transpose(2, 3, 1, 0)
    elif isinstance(layer, keras.layers.Dense):
        flat = flatten_input_shape(model, layer)
        if flat is not None and kernel.shape[1] == int(np.prod(flat)):
            h, w, c = flat
            # torch flattens (C, H, W); Keras flattens (H, W, C).
            kernel = kernel.reshape(-1, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, -1)
        else:
            kernel = kernel.T
    else:
        raise WeightsError(f"No conversion for layer {layer.name!r} of type "
                           f"{type(layer).__name__} (from {prefix!r}).")
    if not layer.use_bias:
        if np.any(bias):
            raise WeightsError(f"{prefix!r} has a bias but layer {layer.name!r} has none.")
        return [kernel], used
    return [kernel, bias], used


def convert_state_dict(model, state, layout) -> list[str]:
    """Sets `model`'s weights from torchvision state dict `state` in place.

    Args:
        model: one of our models with the architecture of the checkpoint (same classes and,
            for a flatten + dense head, the same input size).
        state: `{name: array}`, e.g. from `read_state_dict`.
        layout: a key of `LAYOUTS` (`"vgg"`, `"squeezenet"`, `"resnet"`, `"alexnet"`,
            `"googlenet"`).

    Returns:
        Names of the layers that received weights (every weighted layer of `model`).

    Raises:
        WeightsError: an unknown layout; a tensor without a layer or a layer without a
            tensor; shapes that differ (named, with both shapes).
    """
    if layout not in LAYOUTS:
        raise WeightsError(f"layout must be one of {tuple(LAYOUTS)}. Received: {layout!r}")
    state = {k: np.asarray(v) for k, v in state.items() if not k.endswith(IGNORED_SUFFIXES)}
    layers = {layer.name: layer for layer in model.layers}
    used, updates = set(), []
    for name, prefix in LAYOUTS[layout](model, state):
        if name not in layers:
            raise WeightsError(f"Model {model.name!r} has no layer {name!r} for {prefix!r}: "
                               f"another architecture (layout {layout!r})?")
        layer = layers[name]
        values, keys = layer_values(model, layer, prefix, state)
        expected = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != expected:
            raise WeightsError(
                f"{prefix!r} -> layer {name!r}: shapes {[v.shape for v in values]} do not fit "
                f"{expected} (same classes and input size as the checkpoint?)."
            )
        updates.append((layer, values))
        used.update(keys)
    unused = sorted(k for k in set(state) - used if not k.startswith(TRAINING_ONLY.get(layout, ())))
    return set_complete(model, layers, updates, unused, layout)


def set_complete(model, layers, updates, unused, layout) -> list[str]:
    """Sets `updates` (`(layer, values)` pairs) on `model` only if the mapping is complete:
    no state-dict tensor is `unused` and every weighted layer of `layers` (name -> layer) has
    values; returns the names of the layers set, in order.

    Raises:
        WeightsError: naming the first unused tensors or the layers left without weights.
    """
    if unused:
        raise WeightsError(f"{len(unused)} tensors of the state dict fit no layer of "
                           f"{model.name!r} (layout {layout!r}): {unused[:6]}")
    assigned = [layer.name for layer, _ in updates]
    missing = sorted(n for n, layer in layers.items() if layer.weights and n not in assigned)
    if missing:
        raise WeightsError(f"Layers of {model.name!r} got no tensor from the state dict "
                           f"(layout {layout!r}): {missing[:6]}")
    for layer, values in updates:
        layer.set_weights(values)
    return assigned


def set_bn_epsilon(model, epsilon):
    """Sets the epsilon of every BatchNormalization layer of `model` (the checkpoint's)."""
    import keras

    if epsilon is None:
        return
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.epsilon = float(epsilon)
