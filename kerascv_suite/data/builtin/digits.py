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

Subsets for transfer learning (a source task on some digits, a small target task on the
others): `classes` keeps some digits of every split, and `count` keeps a class-balanced,
seeded sample of a split, nested (the first 100 of a 200-image sample are the 100-image
sample), so a smaller target set is always part of a larger one.
"""

import functools

import cv2
import numpy as np

from kerascv_suite.data.dataset import InMemoryDataset

SPLIT_SEED = 1998
SPLITS = ("train", "val", "test", "all")
DIGITS = tuple(range(10))


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


def parse_digit_classes(text) -> tuple[int, ...]:
    """The digits named by `text`: comma-separated digits and ranges, e.g. `"0-4"`,
    `"6,7,8,9"` or `"0-2,7"`; returned sorted, without repeats."""
    digits = set()
    for part in str(text).replace(" ", "").split(","):
        low, _, high = part.partition("-")
        if not (low.isdigit() and (not high or high.isdigit())):
            raise ValueError(f"classes must be digits and ranges such as '0-4' or '6,7,8,9'. "
                             f"Received: classes={text!r}")
        first, last = int(low), int(high or low)
        if not 0 <= first <= last <= 9:
            raise ValueError(f"classes must lie in 0..9, ranges low-high. "
                             f"Received: classes={text!r}")
        digits.update(range(first, last + 1))
    return tuple(sorted(digits))


def balanced_sample(indices, labels, count, seed=SPLIT_SEED):
    """At most `count` of `indices`, as equal per label as the labels allow, in a seeded
    order that makes smaller samples part of larger ones.

    Each label's indices are shuffled (seeded); an index's rank is its place in its label's
    order, and the `count` indices of lowest rank (ties broken by label) are kept.

    Args:
        indices: `(n,)` sample indices.
        labels: `(N,)` labels, indexed by `indices`.
        count: how many to keep.
        seed: seed of the shuffle.

    Returns:
        `(min(count, n),)` indices, sorted.
    """
    indices = np.asarray(indices)
    shuffled = indices[np.random.default_rng(seed).permutation(len(indices))]
    values = labels[shuffled]
    rank = np.zeros(len(shuffled), dtype=np.int64)
    for value in np.unique(values):
        where = values == value
        rank[where] = np.arange(int(where.sum()))
    return np.sort(shuffled[np.lexsort((values, rank))[:count]])


def load_digits(split="train", classes=None, count=None):
    """The digits dataset (no download; scikit-learn ships it).

    Args:
        split: "train" (1257), "val" (270), "test" (270) or "all" (1797).
        classes: the digits to keep (e.g. `(6, 7, 8, 9)` or `"6-9"`, see
            `parse_digit_classes`); None keeps all ten. Labels are renumbered 0..k-1 in
            digit order and the class names are the kept digits.
        count: keep at most this many images of the split, class-balanced (see
            `balanced_sample`); None keeps them all. It must be at least the number of
            classes, so that every class keeps an image.

    Returns:
        An in-memory `Dataset` (task "classification", class names "0".."9" or the kept
        digits) whose samples are `{"image": (32, 32, 1) uint8, "label": int,
        "path": "digits/<index>"}`.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}. Received: split={split!r}")
    digits = DIGITS if classes is None else (
        parse_digit_classes(classes) if isinstance(classes, str) else
        tuple(sorted({int(d) for d in classes})))
    if not digits or not set(digits) <= set(DIGITS):
        raise ValueError(f"classes must be digits in 0..9. Received: classes={classes!r}")
    if count is not None and int(count) < len(digits):
        raise ValueError(f"count must be at least the number of classes ({len(digits)}) so "
                         f"that every class keeps an image. Received: count={count!r}")
    images, labels, splits = _prepared()
    kept = splits[split][np.isin(labels[splits[split]], digits)]
    if count is not None:
        kept = balanced_sample(kept, labels, int(count))
    label_of = {digit: k for k, digit in enumerate(digits)}
    samples = [{"image": images[i], "label": label_of[int(labels[i])], "path": f"digits/{i:04d}"}
               for i in kept]
    return InMemoryDataset(samples, [str(d) for d in digits], "classification")
