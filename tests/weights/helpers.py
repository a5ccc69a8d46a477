"""Helpers of the weights tests: real photos, torchvision's preprocessing, random weights."""

import hashlib

import numpy as np


def photos(size):
    """Three real photos (scikit-image's bundled astronaut, coffee, chelsea) as a uint8
    `(3, size, size, 3)` batch: centre-cropped square, resized with area interpolation."""
    import cv2
    from skimage import data

    batch = []
    for image in (data.astronaut(), data.coffee(), data.chelsea()):
        h, w = image.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = image[top : top + side, left : left + side]
        batch.append(cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA))
    return np.stack(batch)


def torch_preprocess(images):
    """torchvision's ImageNet normalization of uint8 `(B, H, W, 3)` images, as NCHW float32."""
    import torch

    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    x = (images.astype(np.float32) / 255.0 - mean) / std
    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


def randomize(module, seed):
    """Random weights, and random BatchNorm statistics, so every tensor's mapping is checked."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            values = torch.randn(tensor.shape, generator=generator)
            if name.endswith("running_var"):
                values = values.abs() + 0.5
            elif tensor.ndim > 1:
                fan_in = int(np.prod(tensor.shape[1:]))
                values = values * (2.0 / fan_in) ** 0.5
            elif name.endswith("weight"):  # BatchNorm gamma: near 1 keeps the signal alive
                values = 1.0 + 0.1 * values
            else:
                values = values * 0.1
            tensor.copy_(values)
    return module.eval()


ENTRY = dict(model="squeezenet1_1", source="torchvision", hash_algorithm="sha256",
             size_mb=4.7, license="BSD-3-Clause", format="torch_state_dict",
             converter="squeezenet", preprocessing="torch", input_shape=[224, 224, 3],
             num_classes=1000, classes="imagenet1k",
             metric={"dataset": "none", "top1": 0.0, "top5": 0.0, "citation": "random weights"})


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def random_entry(folder, **changes):
    checkpoint = folder / "squeezenet1_1-random.pth"
    return {**ENTRY, "name": "squeezenet1_1.random", "default": True,
            "url": "https://example.invalid/models/squeezenet1_1-random.pth",
            "hash": sha256(checkpoint), **changes}


def serve_random_resnet18(torchvision, folder, seed):
    """A random torchvision resnet18 saved under the shipped entry's file name in the served
    `folder`; returns `(module, entry)`: the shipped `resnet18.tv_in1k` entry with this
    file's hash, for the `catalog` fixture."""
    import torch

    from kerascv_suite import weights

    module = randomize(torchvision.models.resnet18(weights=None), seed=seed)
    checkpoint = folder / "resnet18-f37072fd.pth"
    torch.save(module.state_dict(), checkpoint)
    shipped = weights.get_entry("resnet18.tv_in1k")
    entry = {**{f: getattr(shipped, f) for f in ENTRY}, "name": shipped.name, "default": True,
             "url": shipped.url, "input_shape": [224, 224, 3], "bn_epsilon": 1e-5,
             "hash": sha256(checkpoint)}
    return module, entry
