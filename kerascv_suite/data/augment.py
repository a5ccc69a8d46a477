"""Image augmentation on numpy samples with albumentations 2.

An `Augmenter` turns one sample dict into another, keeping boxes, masks and keypoints
consistent with the image. It is built from an `AugmentConfig` (a plain dataclass, so it
loads from YAML/CLI) or from a preset name (`"classification"`, `"detection"`,
`"segmentation"` and their `"_eval"` versions, which only resize).

Sample contract (input and output):
    image:     uint8 `(height, width, 3)` RGB, or `(height, width, 1)` grayscale (e.g. the
               built-in digits); the channel count is kept.
    boxes:     float32 `(num_boxes, 4)`, absolute `xyxy` pixels.
    classes:   int32 `(num_boxes,)`.
    mask:      uint8 `(height, width)` class ids, 255 = ignore.
    instance_masks: uint8 `(num_boxes, height, width)` 0/1, aligned with `boxes`: they
               take the geometric transforms (nearest-neighbour) and are dropped with
               their boxes; pixels an affine transform uncovers are 0 (not the instance).
    keypoints: float32 `(num_boxes, num_keypoints, 3)` as `(x, y, visibility)`.
    label:     int (classification), passed through.

Outputs stay uint8: models own their preprocessing, so no normalization happens here.

Grayscale images take the geometric transforms, the resize and the brightness and contrast
jitter as they are. Colour ops need colour: on a 1-channel image `rgb_shift`, `fancy_pca` and
the saturation and hue of `color_jitter` are skipped, and the first such image says so once
(a `GrayscaleColourWarning` naming the skipped options), so a preset made for RGB photos
still trains a folder of grayscale digits.

Albumentations is imported lazily (on first use), so this module imports in milliseconds and
loader worker processes pay the import only once they build the pipeline.

Example:
    >>> aug = build_augmenter("detection", image_size=(320, 320))
    >>> out = aug(sample, seed=sample_seed(0, epoch=0, index=17))
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any

import numpy as np

# albumentations 2 checks PyPI for a newer version at import time; offline that is a wait
# for a timeout in every worker process.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

# The tasks with an augmentation preset (and an "_eval" twin). Keypoints are not among
# them: they ride along with detection or segmentation samples.
PRESET_TASKS = ("classification", "detection", "segmentation")


class GrayscaleColourWarning(UserWarning):
    """Colour augmentation was configured but skipped on 1-channel images."""


@dataclasses.dataclass
class AugmentConfig:
    """What to augment and how strongly.

    Args:
        task: "classification", "detection" or "segmentation". Detection and segmentation
            carry boxes, masks and keypoints along; classification transforms the image only
            (plus a mask if the sample has one).
        image_size: output `(height, width)`, or an int for a square.
        train: False gives the eval pipeline: a plain resize to `image_size`.
        scale: area range of `RandomResizedCrop` (Szegedy et al., "Going Deeper with
            Convolutions", 2015); None resizes the whole image instead of cropping.
        ratio: aspect-ratio range of the crop.
        hflip: probability of a horizontal flip.
        color_jitter: `(brightness, contrast, saturation, hue)` strengths, or None.
            Grayscale images accept only brightness and contrast (saturation = hue = 0).
        color_jitter_p: probability of applying the colour jitter.
        rgb_shift: per-channel shift limit in 0..255 units, or None (RGB images only).
        rgb_shift_p: probability of the RGB shift.
        fancy_pca: standard deviation of the "fancy PCA" lighting noise (Krizhevsky et al.,
            "ImageNet Classification with Deep Convolutional Neural Networks", 2012), or None
            (RGB images only).
        fancy_pca_p: probability of fancy PCA.
        translate: largest shift of a random affine transform, as a fraction of the output
            size per axis (0.1 moves a 32-pixel image by up to 3.2 pixels), or None.
        rotate: largest rotation of the affine transform in degrees (both ways), or None.
        shear: largest shear of the affine transform in degrees (both ways), or None.
        zoom: `(min, max)` scale factor range of the affine transform (e.g. `(0.9, 1.1)`),
            or None. Unlike `scale`, it keeps the whole image: a zoom out pads the border.
        affine_p: probability of the affine transform (`albumentations.Affine`, applied after
            the crop or resize, at the output size). Uncovered pixels are filled with 0 in the
            image and 255 (ignore) in the mask; rotated boxes grow to enclose the rotated box.
        min_visibility: boxes keeping less than this fraction of their area after a crop are
            dropped (with their class and keypoints).
        min_area: boxes smaller than this many pixels after augmentation are dropped.
        keypoint_flip_index: for keypoints with a handedness (left eye / right eye), the
            permutation of keypoint ids that a horizontal flip applies; None keeps the order.
    """

    task: str = "classification"
    image_size: Any = (224, 224)
    train: bool = True
    scale: tuple[float, float] | None = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    color_jitter: tuple[float, float, float, float] | None = (0.4, 0.4, 0.4, 0.0)
    color_jitter_p: float = 0.8
    rgb_shift: float | None = None
    rgb_shift_p: float = 0.5
    fancy_pca: float | None = 0.1
    fancy_pca_p: float = 0.5
    translate: float | None = None
    rotate: float | None = None
    shear: float | None = None
    zoom: tuple[float, float] | None = None
    affine_p: float = 0.5
    min_visibility: float = 0.3
    min_area: float = 1.0
    keypoint_flip_index: tuple[int, ...] | None = None

    def __post_init__(self):
        if self.task not in PRESET_TASKS:
            raise ValueError(f"task must be one of {PRESET_TASKS}. Received: task={self.task!r}")
        size = self.image_size
        if isinstance(size, int):
            size = (size, size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(
                f"image_size must be an int or (height, width). Received: image_size={size!r}"
            )
        self.image_size = (int(size[0]), int(size[1]))
        for name in ("translate", "rotate", "shear"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or value < 0):
                raise ValueError(f"{name} must be a non-negative number (the largest change "
                                 f"both ways) or None. Received: {name}={value!r}")
        if self.zoom is not None and (len(self.zoom) != 2 or not 0 < self.zoom[0] <= self.zoom[1]):
            raise ValueError("zoom must be a (min, max) range with 0 < min <= max, or None. "
                             f"Received: zoom={self.zoom!r}")
        if not 0 <= self.affine_p <= 1:
            raise ValueError(f"affine_p must be a probability in [0, 1]. "
                             f"Received: affine_p={self.affine_p!r}")

    def has_affine(self) -> bool:
        """Whether the training pipeline applies a random affine transform."""
        return self.train and any(
            v is not None for v in (self.translate, self.rotate, self.shear, self.zoom))

    def colour_ops(self) -> list[str]:
        """The enabled options that need a colour (3-channel) image."""
        if not self.train:
            return []
        ops = []
        if self.color_jitter is not None and any(self.color_jitter[2:]):
            ops.append(f"color_jitter={tuple(self.color_jitter)}")
        if self.rgb_shift is not None:
            ops.append(f"rgb_shift={self.rgb_shift}")
        if self.fancy_pca is not None:
            ops.append(f"fancy_pca={self.fancy_pca}")
        return ops


PRESETS = {
    "classification": dict(task="classification"),
    # Aggressive crops lose whole objects, so detection and segmentation crop less.
    "detection": dict(
        task="detection",
        scale=(0.25, 1.0),
        color_jitter=(0.2, 0.2, 0.2, 0.0),
        color_jitter_p=0.5,
    ),
    "segmentation": dict(
        task="segmentation",
        scale=(0.25, 1.0),
        color_jitter=(0.2, 0.2, 0.2, 0.0),
        color_jitter_p=0.5,
    ),
}
PRESETS.update({f"{task}_eval": dict(task=task, train=False) for task in PRESET_TASKS})


def preset(name: str, **overrides) -> AugmentConfig:
    """Returns the `AugmentConfig` of a preset, with `overrides` applied."""
    if name not in PRESETS:
        raise ValueError(f"Unknown augmentation preset. Expected one of {sorted(PRESETS)}. "
                         f"Received: name={name!r}")
    return AugmentConfig(**{**PRESETS[name], **overrides})


def build_augmenter(config: AugmentConfig | dict | str, **overrides) -> "Augmenter":
    """Builds an `Augmenter` from a config, a config dict or a preset name."""
    if isinstance(config, str):
        config = preset(config, **overrides)
    elif isinstance(config, dict):
        config = AugmentConfig(**{**config, **overrides})
    elif overrides:
        config = dataclasses.replace(config, **overrides)
    return Augmenter(config)


def sample_seed(base_seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for one sample, independent of which process augments it."""
    return int(np.random.SeedSequence([base_seed, epoch, index]).generate_state(1)[0])


class Augmenter:
    """Applies an albumentations pipeline to sample dicts.

    Picklable (only the config travels; each process builds its own pipeline), so it can be
    handed to loader worker processes.

    Args:
        config: an `AugmentConfig`.
    """

    def __init__(self, config: AugmentConfig):
        self.config = config
        # One pipeline per channel count (3: all ops; 1: the colour ops left out), built on
        # first use.
        self._composes = {}
        self._said_grayscale = False

    @property
    def output_size(self) -> tuple[int, int]:
        """`(height, width)` of every augmented image."""
        return self.config.image_size

    def __getstate__(self):
        # Pipelines are rebuilt in each process; the "said once" flag travels, so workers
        # started after the first call do not repeat the warning.
        return {"config": self.config, "_composes": {},
                "_said_grayscale": self._said_grayscale}

    def __setstate__(self, state):
        self.config = state["config"]
        self._composes = {}
        self._said_grayscale = state.get("_said_grayscale", False)

    def __repr__(self):
        return f"Augmenter({self.config})"

    def pipeline(self, channels: int = 3):
        """The albumentations `Compose` applied to images with `channels` (1 or 3) channels."""
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3. Received: channels={channels!r}")
        if channels not in self._composes:
            self._composes[channels] = self._build(channels)
        return self._composes[channels]

    def _build(self, channels: int):
        import albumentations as A
        import cv2

        cfg = self.config
        colour = channels == 3
        height, width = cfg.image_size
        transforms = []
        if cfg.train and cfg.scale is not None:
            transforms.append(
                A.RandomResizedCrop(size=(height, width), scale=cfg.scale, ratio=cfg.ratio,
                                    interpolation=cv2.INTER_LINEAR)
            )
        else:
            # The interpolation of `kerascv_suite.data.resize_image`, which prediction on
            # files uses: a model sees at prediction what it saw in evaluation.
            transforms.append(A.Resize(height, width, interpolation=cv2.INTER_LINEAR))
        if cfg.train:
            if cfg.hflip:
                transforms.append(A.HorizontalFlip(p=cfg.hflip))
            if cfg.has_affine():
                transforms.append(self._affine(A, cv2))
            if cfg.color_jitter is not None:
                b, c, s, h = cfg.color_jitter
                if not colour:
                    s = h = 0
                if any((b, c, s, h)):
                    transforms.append(
                        A.ColorJitter(brightness=b, contrast=c, saturation=s, hue=h,
                                      p=cfg.color_jitter_p)
                    )
            if cfg.rgb_shift is not None and colour:
                limit = (-cfg.rgb_shift, cfg.rgb_shift)
                transforms.append(A.RGBShift(limit, limit, limit, p=cfg.rgb_shift_p))
            if cfg.fancy_pca is not None and colour:
                transforms.append(A.FancyPCA(alpha=cfg.fancy_pca, p=cfg.fancy_pca_p))
        # Every box carries its row id, so keypoints of dropped boxes can be dropped too.
        bbox_params = A.BboxParams(
            format="pascal_voc",
            label_fields=["classes", "box_ids"],
            min_visibility=cfg.min_visibility,
            min_area=cfg.min_area,
            clip=True,
            filter_invalid_bboxes=True,
        )
        # remove_invisible=False keeps the keypoint count fixed; visibility is recomputed.
        keypoint_params = A.KeypointParams(format="xy", remove_invisible=False)
        return A.Compose(
            transforms,
            bbox_params=bbox_params,
            keypoint_params=keypoint_params,
            save_applied_params=cfg.keypoint_flip_index is not None,
        )

    def _affine(self, A, cv2):
        cfg = self.config

        def both_ways(limit):
            return (-float(limit or 0), float(limit or 0))

        return A.Affine(
            scale=tuple(cfg.zoom) if cfg.zoom is not None else (1.0, 1.0),
            translate_percent=both_ways(cfg.translate),
            rotate=both_ways(cfg.rotate),
            shear=both_ways(cfg.shear),
            interpolation=cv2.INTER_LINEAR,
            border_mode=cv2.BORDER_CONSTANT,
            fill=0,
            fill_mask=255,
            p=cfg.affine_p,
        )

    def _say_grayscale(self, image_shape):
        skipped = self.config.colour_ops()
        if skipped and not self._said_grayscale:
            self._said_grayscale = True
            warnings.warn(
                f"Grayscale images {tuple(image_shape)}: colour augmentation "
                f"{', '.join(skipped)} is skipped for them (brightness and contrast still "
                "apply). Set these options to None in augment_options to silence this.",
                GrayscaleColourWarning,
                stacklevel=3,
            )

    def __call__(self, sample: dict, seed: int | None = None) -> dict:
        """Augments one sample.

        Args:
            sample: a sample dict (see the module docstring).
            seed: seeds every random choice for this call; None draws from the pipeline's
                running random state.

        Returns:
            A new sample dict with the same keys.
        """
        image = np.asarray(sample["image"])
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] not in (1, 3):
            raise ValueError(
                "image must be uint8 RGB (height, width, 3) or grayscale (height, width, 1). "
                f"Received: dtype={image.dtype}, shape={image.shape}"
            )
        channels = image.shape[-1]
        if channels == 1:
            self._say_grayscale(image.shape)
        compose = self.pipeline(channels)
        if seed is not None:
            compose.set_random_seed(seed)
        height, width = image.shape[:2]
        boxes = np.asarray(sample.get("boxes", np.zeros((0, 4))), np.float32).reshape(-1, 4)
        classes = np.asarray(sample.get("classes", np.zeros((len(boxes),))), np.int32)
        inputs = dict(
            image=image,
            bboxes=boxes,
            classes=classes.reshape(-1),
            box_ids=np.arange(len(boxes)),
            keypoints=np.zeros((0, 2), np.float32),
        )
        if "mask" in sample:
            inputs["mask"] = np.asarray(sample["mask"], np.uint8)
        instances = None
        if "instance_masks" in sample:
            instances = np.asarray(sample["instance_masks"], np.uint8)
            if instances.shape != (len(boxes), height, width):
                raise ValueError(
                    "instance_masks must be (num_boxes, height, width) = "
                    f"{(len(boxes), height, width)}, one per box. "
                    f"Received: shape={instances.shape}")
            if len(instances):
                inputs["masks"] = instances
        keypoints = None
        if "keypoints" in sample:
            keypoints = np.asarray(sample["keypoints"], np.float32)
            inputs["keypoints"] = keypoints[..., :2].reshape(-1, 2)

        result = compose(**inputs)

        out = {k: v for k, v in sample.items() if k not in ("image", "boxes", "classes",
                                                             "mask", "keypoints",
                                                             "instance_masks")}
        out["image"] = result["image"]
        if "mask" in sample:
            out["mask"] = result["mask"]
        if "boxes" in sample:
            out["boxes"] = np.asarray(result["bboxes"], np.float32).reshape(-1, 4)
        if "classes" in sample:
            out["classes"] = np.asarray(result["classes"], np.int32).reshape(-1)
        if keypoints is not None:
            out["keypoints"] = self._keypoints(keypoints, result, "boxes" in sample)
        if instances is not None:
            out["instance_masks"] = self._instances(instances, result)
        return out

    def _instances(self, instances, result):
        out_h, out_w = result["image"].shape[:2]
        kept = np.asarray(result["box_ids"], np.int64)
        if not len(instances):
            return np.zeros((0, out_h, out_w), np.uint8)
        masks = np.asarray(result["masks"], np.uint8).reshape(-1, out_h, out_w)
        # `== 1`: the affine fill (255, the semantic mask's ignore) is not the instance.
        return (masks[kept] == 1).astype(np.uint8)

    def _keypoints(self, keypoints, result, has_boxes):
        out_h, out_w = result["image"].shape[:2]
        xy = np.asarray(result["keypoints"], np.float32)[:, :2].reshape(keypoints.shape[:-1] + (2,))
        inside = (xy[..., 0] >= 0) & (xy[..., 0] < out_w) & (xy[..., 1] >= 0) & (xy[..., 1] < out_h)
        visibility = np.where(inside, keypoints[..., 2], 0).astype(np.float32)
        kps = np.concatenate([xy, visibility[..., None]], axis=-1)
        flip_index = self.config.keypoint_flip_index
        if flip_index is not None:
            flips = sum(name == "HorizontalFlip" for name, _ in result["applied_transforms"])
            if flips % 2:
                kps = kps[:, list(flip_index)]
        if has_boxes:
            kps = kps[np.asarray(result["box_ids"], np.int64)]
        return kps
