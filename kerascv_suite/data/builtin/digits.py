"""scikit-learn's handwritten digits as a 32x32 LeNet-ready dataset.

Source: the UCI "Optical Recognition of Handwritten Digits" test set as shipped by
`sklearn.datasets.load_digits`: 1797 real 8x8 images, values 0..16, 10 classes.

Upscaling (MNIST-like, for LeNet-5's 32x32x1 input): values are scaled to 0..255
(`v * 255 / 16`), the 8x8 image is resized to 28x28 with bilinear interpolation
(`cv2.INTER_LINEAR`: no overshoot, so no clipping artefacts), then zero-padded by 2
pixels on each side to 32x32, as LeNet-5 pads 28x28 MNIST digits (LeCun et al.,
"Gradient-Based Learning Applied to Document Recognition", 1998). Images are
`(32, 32, 1)` uint8 — the one exception to RGB in the data layer, since they are
grayscale and lenet5 takes one channel.

Split: stratified 70/15/15 with a fixed seed (`SPLIT_SEED`): test = 270, val = 270,
train = 1257 (`train_test_split` rounds the held-out sizes up: ceil(0.15 * 1797) = 270).
"""

import functools

import cv2
import numpy as np

from kerascv_suite.data.dataset import InMemoryDataset

SPLIT_SEED = 1998
SPLITS = ("train", "val", "test", "all")


@functools.lru_cache(maxsize=1)
def _prepared():
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    raw = bunch.images  # (1797, 8, 8) float64 in 0..16
    images = np.zeros((len(raw), 32, 32, 1), dtype=np.uint8)
    for k, digit in enumerate(raw):
        scaled = (digit * (255.0 / 16.0)).astype(np.float32)
        big = cv2.resize(scaled, (28, 28), interpolation=cv2.INTER_LINEAR)
        images[k, 2:30, 2:30, 0] = np.clip(np.round(big), 0, 255).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    indices = np.arange(len(labels))
    rest, test = train_test_split(indices, test_size=0.15, stratify=labels,
                                  random_state=SPLIT_SEED)
    train, val = train_test_split(rest, test_size=len(test), stratify=labels[rest],
                                  random_state=SPLIT_SEED)
    splits = {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test),
              "all": indices}
    return images, labels, splits


def load_digits(split="train"):
    """The digits dataset (no download; scikit-learn ships it).

    Args:
        split: "train" (1257), "val" (270), "test" (270) or "all" (1797).

    Returns:
        An in-memory `Dataset` (task "classification", class names "0".."9") whose
        samples are `{"image": (32, 32, 1) uint8, "label": int, "path": "digits/<index>"}`.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}. Received: split={split!r}")
    images, labels, splits = _prepared()
    samples = [{"image": images[i], "label": int(labels[i]), "path": f"digits/{i:04d}"}
               for i in splits[split]]
    return InMemoryDataset(samples, [str(d) for d in range(10)], "classification")
