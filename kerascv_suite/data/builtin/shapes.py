"""Deterministic synthetic scenes of circles, squares and triangles.

Every sample is generated from `(seed, split, index)` alone, so `ds[i]` is random
access, cheap, and identical across runs and machines for the same arguments.

* Background: one of uniform-plus-noise, a linear two-colour gradient, or stripes.
* Objects: 1..`max_objects` non-overlapping shapes (placement retries; a scene that
  cannot fit more keeps fewer), each a solid colour chosen far from the background,
  randomly sized and rotated.
* Annotations: `boxes` (tight pixel-edge `xyxy` of the object's pixels), `classes`
  (0 = circle, 1 = square, 2 = triangle, first `num_classes` of them), a semantic
  `mask` (0 = background, class c -> c + 1, no 255), `instance_masks`, and
  `keypoints` `(N, 4, 3)`: square corners and triangle corners (its 4th point is
  `(0, 0, 0)`, unlabelled) in drawing order; circles get 4 points on the circle at the
  object's rotation angle + 0/90/180/270 degrees. Visibility 2 (COCO "visible").
"""

import cv2
import numpy as np

from kerascv_suite.data.dataset import Dataset

SHAPE_NAMES = ("circle", "square", "triangle")
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
NUM_KEYPOINTS = 4
_SHIFT = 4


class ShapesDataset(Dataset):
    """Synthetic shapes; see the module docstring. Build it with `make_shapes`."""

    has_background = True

    def __init__(self, count, image_size, num_classes, max_objects, seed, split):
        super().__init__(SHAPE_NAMES[:num_classes], {"detection", "segmentation", "keypoints"})
        self.count = count
        self.image_size = image_size
        self.max_objects = max_objects
        self.seed = seed
        self.split = split

    def __len__(self):
        return self.count

    def describe(self, index):
        # The split is part of the stem: VOC keeps all splits in one JPEGImages folder.
        return f"shapes/{self.split}_{index:06d}.png"

    def load(self, index):
        if not 0 <= index < self.count:
            raise IndexError(f"index {index} out of range for {self.count} samples")
        rng = np.random.default_rng([self.seed, SPLIT_IDS[self.split], index])
        height, width = self.image_size
        image = _background(rng, height, width)
        occupied = np.zeros((height, width), dtype=np.uint8)
        boxes, classes, instances, keypoints = [], [], [], []
        for _ in range(int(rng.integers(1, self.max_objects + 1))):
            placed = _place(rng, height, width, self.num_classes, occupied)
            if placed is None:
                continue
            class_id, instance, points = placed
            occupied |= cv2.dilate(instance, np.ones((3, 3), np.uint8))
            color = _contrasting_color(rng, image[instance > 0].mean(axis=0))
            texture = rng.normal(0, 6, (height, width, 3))
            painted = np.clip(color + texture, 0, 255).astype(np.uint8)
            image[instance > 0] = painted[instance > 0]
            ys, xs = np.nonzero(instance)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            classes.append(class_id)
            instances.append(instance)
            keypoints.append(points)
        mask = np.zeros((height, width), dtype=np.uint8)
        for class_id, instance in zip(classes, instances):
            mask[instance > 0] = class_id + 1
        return {
            "image": image,
            "boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            "classes": np.asarray(classes, dtype=np.int32),
            "mask": mask,
            "instance_masks": (np.stack(instances) if instances else
                               np.zeros((0, height, width), np.uint8)),
            "keypoints": (np.stack(keypoints).astype(np.float32) if keypoints else
                          np.zeros((0, NUM_KEYPOINTS, 3), np.float32)),
            "path": self.describe(index),
        }


def make_shapes(count=100, image_size=64, num_classes=3, max_objects=4, seed=0,
                split="train"):
    """Synthetic shapes dataset (detection, segmentation and keypoints at once).

    Args:
        count: number of images.
        image_size: int or `(height, width)`, at least 16.
        num_classes: 1..3 (circle, square, triangle).
        max_objects: most objects per image (at least 1 per image is attempted).
        seed: same seed, split and arguments -> identical data.
        split: "train", "val" or "test" (independent streams from the same seed).

    Returns:
        A `ShapesDataset` (a `Dataset`).

    Example:
        >>> ds = make_shapes(count=8, image_size=32, seed=1)
        >>> ds[0]["image"].shape
        (32, 32, 3)
    """
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    image_size = tuple(int(v) for v in image_size)
    if len(image_size) != 2 or min(image_size) < 16:
        raise ValueError(f"image_size must be >= 16 (int or (height, width)). "
                         f"Received: image_size={image_size}")
    if not 1 <= num_classes <= len(SHAPE_NAMES):
        raise ValueError(f"num_classes must be 1..{len(SHAPE_NAMES)}. "
                         f"Received: num_classes={num_classes}")
    if count < 0 or max_objects < 1:
        raise ValueError(f"count must be >= 0 and max_objects >= 1. Received: count={count}, "
                         f"max_objects={max_objects}")
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {tuple(SPLIT_IDS)}. Received: split={split!r}")
    return ShapesDataset(int(count), image_size, int(num_classes), int(max_objects), int(seed),
                         split)


def _background(rng, height, width):
    kind = rng.integers(3)
    base = rng.uniform(0, 255, 3)
    if kind == 0:
        image = base + rng.normal(0, 20, (height, width, 3))
    elif kind == 1:
        other = rng.uniform(0, 255, 3)
        angle = rng.uniform(0, 2 * np.pi)
        ys, xs = np.mgrid[0:height, 0:width]
        ramp = xs * np.cos(angle) + ys * np.sin(angle)
        ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
        image = base + ramp[..., None] * (other - base)
    else:
        other = rng.uniform(0, 255, 3)
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(4, 12)
        ys, xs = np.mgrid[0:height, 0:width]
        phase = (xs * np.cos(angle) + ys * np.sin(angle)) / period
        image = np.where((np.floor(phase) % 2 == 0)[..., None], base, other)
        image = image + rng.normal(0, 8, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _contrasting_color(rng, background):
    best, best_distance = None, -1.0
    for _ in range(8):
        color = rng.uniform(0, 255, 3)
        distance = float(np.linalg.norm(color - background))
        if distance > 120:
            return color
        if distance > best_distance:
            best, best_distance = color, distance
    return best


def _place(rng, height, width, num_classes, occupied, attempts=20):
    side = min(height, width)
    for _ in range(attempts):
        class_id = int(rng.integers(num_classes))
        radius = rng.uniform(0.1, 0.22) * side
        radius = max(radius, 4.0)
        cx = rng.uniform(radius + 1, width - radius - 1)
        cy = rng.uniform(radius + 1, height - radius - 1)
        angle = rng.uniform(0, 2 * np.pi)
        instance = np.zeros((height, width), dtype=np.uint8)
        points = np.zeros((NUM_KEYPOINTS, 3), dtype=np.float64)
        if SHAPE_NAMES[class_id] == "circle":
            corners = np.stack([cx + radius * np.cos(angle + np.arange(4) * np.pi / 2),
                                cy + radius * np.sin(angle + np.arange(4) * np.pi / 2)], 1)
            centre = tuple(int(v) for v in _fixed([cx, cy])[0])
            cv2.circle(instance, centre, int(round(radius * (1 << _SHIFT))), 1,
                       lineType=cv2.LINE_8, shift=_SHIFT, thickness=-1)
        else:
            sides = 4 if SHAPE_NAMES[class_id] == "square" else 3
            # Circumradius r; a square of half-diagonal r, an equilateral triangle.
            theta = angle + np.arange(sides) * 2 * np.pi / sides
            corners = np.stack([cx + radius * np.cos(theta), cy + radius * np.sin(theta)], 1)
            cv2.fillPoly(instance, [_fixed(corners)], 1, lineType=cv2.LINE_8, shift=_SHIFT)
        if not instance.any() or (instance & occupied).any():
            continue
        points[:len(corners), :2] = corners
        points[:len(corners), 2] = 2
        return class_id, instance, points
    return None


def _fixed(points):
    # Continuous coordinates (pixel i covers [i, i+1)) -> OpenCV's fixed point, centre = i.
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2) - 0.5
    return np.round(points * (1 << _SHIFT)).astype(np.int32)
