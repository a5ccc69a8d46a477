"""Images that calibrate an int8 TFLite export (its representative dataset).

`calibration_inputs(model, data)` returns the inputs the export's graph takes, sample by
sample: images `(1, H, W, C)` float32 RGB 0..255 at the model's input size (and, for Fast
R-CNN / R-CNN, selective-search proposals `(1, P, 4)` on them), from

* `data=None`: the built-in set the model's recipe trained on (`recipes/<name>.yaml`'s
  `data`, e.g. `ssd300_shapes` -> shapes, `lenet5_digits` -> digits), else the built-in set
  of its task (digits for classifiers, shapes otherwise), the set `kcv train` uses when
  `--data` is not given;
* `data="shapes"` or `"digits"`: that built-in set (its train split);
* `data=FOLDER`: the images under it (searched recursively; files that do not decode are
  left out), evenly spaced over the sorted list.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

BUILTIN_SETS = ("shapes", "digits")
# The built-in set each task trains on when neither a recipe nor --data names one.
TASK_SETS = {"classification": "digits", "detection": "shapes", "segmentation": "shapes",
             "keypoints": "shapes"}


@dataclasses.dataclass
class Calibration:
    """A representative dataset.

    Attributes:
        samples: one list of graph inputs per sample (float32, batch 1).
        source: what the images are, for the export's metadata (e.g. "shapes (train
            split, the set recipe ssd300_shapes trained on)").
    """

    samples: list
    source: str

    def __call__(self):
        """The generator `TFLiteConverter.representative_dataset` takes."""
        yield from self.samples


def default_set(model):
    """`(built-in set name, why)` the model calibrates on when no `--data` is given."""
    from kerascv_suite.models.metadata import describe

    fields = describe(model)
    name = fields.get("name")
    if name:
        import yaml

        from kerascv_suite.models.recipe_variants import RECIPES_DIR

        recipe = RECIPES_DIR / f"{name}.yaml"
        if recipe.is_file():
            data = (yaml.safe_load(recipe.read_text(encoding="utf-8")) or {}).get("data")
            if data in BUILTIN_SETS:
                return data, f"the set recipe {name} trained on"
    task = fields.get("task")
    if task not in TASK_SETS:
        raise ValueError(f"No built-in set to calibrate a {task!r} model on; pass --data "
                         f"FOLDER of images. Received: task={task!r}")
    return TASK_SETS[task], f"the built-in {task} set"


def calibration_images(model, shape, data=None, count=64, seed=0):
    """`(images (count, H, W, C) float32 0..255, source)` for `model` at input `shape`
    `(H, W, C)`; see the module docstring for `data`.

    Raises:
        ValueError: `data` is neither a built-in set nor a folder holding images.
    """
    from kerascv_suite.data.image_io import resize_image

    height, width, channels = (int(d) for d in shape)
    if data is None:
        data, why = default_set(model)
        source = f"{data} (train split, {why})"
    elif str(data) in BUILTIN_SETS:
        data, source = str(data), f"{data} (train split)"
    else:
        source = None
    if data == "shapes":
        from kerascv_suite.data import make_shapes

        images = [s["image"] for s in make_shapes(count, (height, width), seed=seed)]
    elif data == "digits":
        from kerascv_suite.data import load_digits

        digits = load_digits("train")
        images = [digits[int(i)]["image"] for i in spaced(len(digits), count)]
    else:
        images = folder_images(data, count, channels)
        source = f"{len(images)} images of {data}"
    images = [fit_channels(resize_image(np.asarray(image), (height, width)), channels)
              for image in images]
    return np.stack(images).astype(np.float32), source


def calibration_inputs(model, shape, data=None, count=64, seed=0, num_proposals=None):
    """A `Calibration` of `count` samples for an export of `model` (input `shape` `(H, W,
    C)`; `num_proposals`: the proposals input of a Fast R-CNN / R-CNN graph, else None)."""
    images, source = calibration_images(model, shape, data, count, seed)
    if not num_proposals:
        return Calibration([[image[None]] for image in images], source)
    from kerascv_suite.models.detection.selective_search import selective_search_batch

    # Zero-padded to the graph's proposal count, as `kcv detect` feeds it.
    proposals = selective_search_batch(images.astype(np.uint8),
                                       max_proposals=int(num_proposals))
    return Calibration([[image[None], rois[None]] for image, rois in zip(images, proposals)],
                       f"{source}, selective-search proposals")


def spaced(total, count):
    """`min(count, total)` indices spread evenly over `range(total)`."""
    return np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(int))


def folder_images(folder, count, channels=3):
    """Up to `count` decodable images under `folder`, evenly spaced over the sorted list."""
    from kerascv_suite.data.errors import BadImageError
    from kerascv_suite.data.image_io import IMAGE_EXTENSIONS, decode_image

    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"--data must be a built-in set ({', '.join(BUILTIN_SETS)}) or a "
                         f"folder of images to calibrate on. Received: {folder}")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower()
                   in IMAGE_EXTENSIONS and not any(part.startswith(".") for part in
                                                   p.relative_to(root).parts))
    images = []
    for i in spaced(len(files), count) if files else []:
        try:
            images.append(decode_image(files[i], channels=3))
        except BadImageError:
            continue
    if not images:
        raise ValueError(f"No images to calibrate on under {folder} (searched recursively, "
                         "hidden ones left out); pass a folder of images or a built-in set "
                         f"({', '.join(BUILTIN_SETS)}). Received: --data {folder}")
    return images


def fit_channels(image, channels):
    """`image` `(H, W[, C])` with `channels` channels (RGB <-> grayscale)."""
    image = image if image.ndim == 3 else image[..., None]
    if image.shape[-1] == channels:
        return image
    if channels == 1:
        weights = np.array([0.299, 0.587, 0.114], np.float32)
        return (image[..., :3].astype(np.float32) @ weights)[..., None]
    return np.repeat(image[..., :1], channels, axis=-1)
