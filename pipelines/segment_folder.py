"""Segment every image of a folder: palette masks, overlays and class pixel fractions.

Files stream through `tf.data` (`folder_io.BatchStream`): decoded in parallel, turned into
model inputs and batched ahead of the model; background writer threads
(`folder_io.predict_and_write`) map the predictions back and write the outputs, so disk
writes overlap the next batch's compute.

Two ways to fit an image of any size to the model's input (`mode`):
    resize  the whole image is resized to the input (what models trained on whole, resized
            images expect: the recipes here). The class map is taken (argmax) at the
            model's resolution and resized to the original size with nearest neighbour,
            which keeps class ids intact and costs a fraction of resizing `K` probability
            planes (the model resolved nothing finer than its output grid anyway).
    tile    overlapping windows of the input size (`tile_overlap` of a side shared by
            neighbours) cover the image at its native resolution (for large images, and
            models trained on crops). The image is reflect-padded to the grid, centred, so
            border pixels have context and images smaller than a tile work. Per-pixel class
            probabilities are averaged over the tiles covering the pixel: the model's output
            is a probability (softmax), and the mean of probabilities is the usual ensemble
            of predictions, bounded where logits of an over-confident edge tile are not.
            (The argmax of the per-pixel sum equals that of the mean, as every class of a
            pixel has the same count, so only sums are kept.) The padded map is cropped
            back to exactly the original size. Tiles of several images share batches.
    auto    tile images more than twice the input size along a side (resizing would
            shrink them more than twofold there), resize the others.
The default is `resize`: a tool cannot know the scale a model was trained at, and the
models trained here saw whole resized images.

Outputs in `out`, per image (named by file stem; two files sharing a stem keep their
extension in the name, `a_png`):
    masks/<stem>.png        palette PNG of class ids (VOC colours, `kerascv_suite.data`)
    overlays/<stem>.jpg     the image with the mask blended over it
    fractions/<stem>.json   fraction of the image's pixels per class
and, for the whole folder, `fractions.csv` and `fractions.json` (one row / entry per image)
and `skipped.txt` (files that could not be read and why).

Files that are not images or are corrupt are skipped and reported; the run never stops on
them. An image whose three outputs exist is not redone unless `overwrite`.

Example:
    >>> result = run(SegmentConfig("photos/", model="models:/shapes-unet@champion",
    ...                            out="segmented/", mode="tile"))
    >>> result.written, result.tiled, result.skipped
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import math
import threading
import time
from pathlib import Path

import numpy as np

from kerascv_suite.pipelines.folder_io import (BatchStream, atomic_write, list_files,
                                               output_names, predict_and_write, resize_image,
                                               skip_report, write_skipped)

MODES = ("resize", "tile", "auto")
# A model input's id in the stream: image index * _MAX_TILES + tile number.
_MAX_TILES = 1 << 24


@dataclasses.dataclass
class SegmentConfig:
    """Options of a folder segmentation run.

    Attributes:
        folder: folder of images (searched recursively; every file is tried).
        model: registry name, `.keras` file or MLflow model URI.
        out: output folder.
        batch_size: model inputs (images or tiles) per predict call.
        overwrite: redo images whose outputs exist.
        class_names: names of the mask values for the fractions (None: `0..K-1`).
        alpha: opacity of the mask in the overlays.
        image_size: input side when the model's input size is not fixed.
        mode: "resize", "tile" or "auto" (see the module docstring).
        tile_overlap: fraction of a tile's side shared with its neighbour, in `[0, 1)`.
        decode_threads: parallel decodes (None: one per core, at most 4).
        write_threads: background writer threads.
    """

    folder: str
    model: str
    out: str = "segmented"
    batch_size: int = 8
    overwrite: bool = False
    class_names: list | None = None
    alpha: float = 0.5
    image_size: int | None = None
    mode: str = "resize"
    tile_overlap: float = 0.25
    decode_threads: int | None = None
    write_threads: int = 2

    def __post_init__(self):
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1. Received: batch_size={self.batch_size}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}. Received: mode={self.mode!r}")
        if not 0 <= self.tile_overlap < 1:
            raise ValueError(f"tile_overlap must be in [0, 1). "
                             f"Received: tile_overlap={self.tile_overlap}")
        if not Path(self.folder).is_dir():
            raise FileNotFoundError(f"No such folder: {self.folder}. "
                                    f"Received: folder={self.folder!r}")


@dataclasses.dataclass
class SegmentResult:
    """What a run did: images written (of them, tiled), skipped as done, unreadable files."""

    written: int
    existing: int
    skipped: list  # [(relative path, reason)]
    seconds: float
    out: Path
    tiled: int = 0

    @property
    def images_per_second(self):
        return self.written / self.seconds if self.seconds else 0.0


# === Drawing ===


@functools.cache
def palette_array():
    """`(256, 3)` uint8 VOC colours (index = class id)."""
    from kerascv_suite.data import voc_palette

    array = np.asarray(voc_palette(), np.uint8).reshape(256, 3)
    array.flags.writeable = False  # shared by every call
    return array


def colorize(mask):
    """`(height, width)` class ids -> `(height, width, 3)` VOC colours."""
    return palette_array()[np.asarray(mask, np.uint8)]


def overlay(image, mask, alpha=0.5):
    """The image with the coloured mask blended over it; background (0) stays unchanged."""
    import cv2

    image = np.ascontiguousarray(image, np.uint8)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    mask = np.ascontiguousarray(mask, np.uint8)
    # OpenCV throughout (a per-channel lookup table, a blend that rounds like numpy, a
    # masked copy): several times less CPU than numpy indexing, and the writer threads
    # share the cores with the model.
    colours = cv2.LUT(cv2.merge((mask, mask, mask)), palette_array().reshape(256, 1, 3))
    blended = cv2.addWeighted(image, 1 - alpha, colours, alpha, 0)
    out = image.copy()
    cv2.copyTo(blended, mask, out)  # only where the mask is not background
    return out


def overlay_panel(image, truth, prediction, alpha=0.5):
    """`image | ground truth overlay | prediction overlay`, side by side (training reports)."""
    return np.concatenate([np.asarray(image[..., :3] if image.shape[-1] >= 3 else
                                      np.repeat(image, 3, axis=-1), np.uint8),
                           overlay(image, np.where(truth == 255, 0, truth), alpha),
                           overlay(image, prediction, alpha)], axis=1)


def write_palette_png(path, mask):
    """A uint8 class map as a palette PNG (VOC colours), as `kerascv_suite.data.write_mask`,
    with fast zlib settings: level 3 writes a typical mask several times faster than
    Pillow's default 6, for a few percent more bytes."""
    from PIL import Image

    image = Image.fromarray(np.asarray(mask, np.uint8))  # 2-D uint8: mode "L"
    image.putpalette(palette_array().tobytes())  # "L" becomes "P" with the same indices
    image.save(path, format="PNG", compress_level=3)


# === Tiles ===


def tile_origins(length, tile, overlap):
    """Start offsets of overlapping windows along one axis, and the length they cover.

    Windows step by `round(tile * (1 - overlap))` (at least 1 pixel); there are just
    enough to cover `length` (one when `length <= tile`).

    Returns:
        `(origins, covered)`: the list of offsets and `origins[-1] + tile >= length`.
    """
    stride = max(1, round(tile * (1 - overlap)))
    count = 1 if length <= tile else math.ceil((length - tile) / stride) + 1
    origins = [i * stride for i in range(count)]
    return origins, origins[-1] + tile


@dataclasses.dataclass
class TileLayout:
    """Where an image's tiles lie: origins in the padded image, its size and the offset of
    the original image in it."""

    origins: list  # [(y, x)]
    tile: tuple  # (height, width)
    padded: tuple  # (height, width)
    offset: tuple  # (top, left)
    size: tuple  # original (height, width)


def plan_tiles(size, tile, overlap):
    """The `TileLayout` of an image of `size` `(height, width)` cut into `tile` windows."""
    ys, padded_h = tile_origins(size[0], tile[0], overlap)
    xs, padded_w = tile_origins(size[1], tile[1], overlap)
    return TileLayout([(y, x) for y in ys for x in xs], tuple(tile), (padded_h, padded_w),
                      ((padded_h - size[0]) // 2, (padded_w - size[1]) // 2), tuple(size))


def cut_tiles(image, tile, overlap):
    """`image` `(height, width, channels)` -> `(tiles (n, th, tw, channels), TileLayout)`;
    the image is reflect-padded (centred) to the area the tiles cover."""
    import cv2

    layout = plan_tiles(image.shape[:2], tile, overlap)
    (top, left), (ph, pw) = layout.offset, layout.padded
    height, width = image.shape[:2]
    # BORDER_REFLECT_101 (mirror without repeating the edge) also pads past a small
    # image's own size, where numpy's reflect would need several passes.
    padded = cv2.copyMakeBorder(image, top, ph - height - top, left, pw - width - left,
                                cv2.BORDER_REFLECT_101).reshape(ph, pw, image.shape[-1])
    tiles = np.stack([padded[y:y + tile[0], x:x + tile[1]] for y, x in layout.origins])
    return tiles, layout


def uses_tiles(size, tile, mode):
    """Whether an image of `size` is tiled under `mode` (see the module docstring)."""
    if mode == "auto":
        return size[0] > 2 * tile[0] or size[1] > 2 * tile[1]
    return mode == "tile"


class _Image:
    """An image in flight: its original pixels, and its tiles' summed probabilities until
    the last tile arrives (tiles reach the writer threads in any order)."""

    def __init__(self, original, layout):
        self.original = original
        self.layout = layout
        self.remaining = len(layout.origins) if layout else 1
        self.sums = None
        self.lock = threading.Lock()

    def add(self, number, probabilities):
        """Adds tile `number`'s `(th, tw, K)` probabilities; returns the `(height, width)`
        uint8 class map once every tile is in, else None."""
        if self.layout is None:
            return class_map(probabilities, self.original.shape[:2])
        y, x = self.layout.origins[number]
        th, tw = self.layout.tile
        if probabilities.shape[:2] != (th, tw):
            # A model whose output is smaller than its input (valid convolutions) is
            # stretched over its tile, as resize mode stretches it over the image.
            import cv2

            probabilities = cv2.resize(probabilities, (tw, th), interpolation=cv2.INTER_LINEAR
                                       ).reshape(th, tw, probabilities.shape[-1])
        with self.lock:
            if self.sums is None:
                self.sums = np.zeros((*self.layout.padded, probabilities.shape[-1]),
                                     np.float32)
            self.sums[y:y + th, x:x + tw] += probabilities
            self.remaining -= 1
            if self.remaining:
                return None
        (top, left), (height, width) = self.layout.offset, self.layout.size
        return self.sums[top:top + height, left:left + width].argmax(-1).astype(np.uint8)


def class_map(probabilities, size):
    """`(h, w, K)` probabilities -> `(height, width)` uint8 class ids: the argmax at the
    model's resolution, resized (nearest) to `size` when it differs."""
    import cv2

    mask = np.asarray(probabilities).argmax(-1).astype(np.uint8)
    if mask.shape != tuple(size):
        mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return mask


# === Files ===


def output_paths(out, name):
    out = Path(out)
    return {"mask": out / "masks" / f"{name}.png",
            "overlay": out / "overlays" / f"{name}.jpg",
            "fractions": out / "fractions" / f"{name}.json"}


# === Pipeline ===


def model_input_size(model, image_size=None):
    height, width = model.input_shape[1:3]
    if height is None or width is None:
        if image_size is None:
            raise ValueError(f"{model.name} takes any input size; pass image_size "
                             f"(--image-size). Received: input_shape={model.input_shape}")
        return int(image_size), int(image_size)
    return int(height), int(width)


def make_tile_dataset(paths, size, channels, batch_size, images, failures, mode="resize",
                      overlap=0.25, threads=None):
    """A `folder_io.BatchStream` of `(inputs (batch, h, w, channels) uint8, ids (batch,))`.

    Each file becomes one model input (resized) or several (tiles); an input's id is
    `image index * _MAX_TILES + tile number`, and inputs of several images share batches.
    Decoded images land in `images[index]` (an `_Image`); files that fail to decode land in
    `failures[index]` (the reason) and add no input.
    """
    import cv2

    from kerascv_suite.data import decode_image

    height, width = size
    empty = np.zeros((0, height, width, channels), np.uint8), np.zeros(0, np.int64)

    def load(index):
        try:
            image = decode_image(paths[index], channels=3)
            source = image if channels == 3 else \
                cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None]
            if uses_tiles(image.shape[:2], size, mode):
                inputs, layout = cut_tiles(source, size, overlap)
            else:
                inputs, layout = resize_image(source, size)[None], None
            if len(inputs) >= _MAX_TILES:
                raise ValueError(f"{len(inputs)} tiles; at most {_MAX_TILES - 1}")
            images[index] = _Image(image, layout)  # one key per thread: atomic
            ids = index * _MAX_TILES + np.arange(len(inputs), dtype=np.int64)
            return inputs.reshape(-1, height, width, channels), ids
        except Exception as error:  # noqa: BLE001 - one bad file must not stop the folder
            failures[index] = getattr(error, "reason", None) or \
                f"{type(error).__name__}: {error}"
            return empty

    return BatchStream(len(paths), load, batch_size, (height, width, channels), threads=threads)


def class_counts(mask, num_classes):
    """Pixels of each class id `0..num_classes - 1` in a uint8 class map. One comparison
    per class when there are few: `np.bincount` first widens the map to 64-bit ints, which
    costs several times more for the handful of classes of a typical model."""
    if num_classes <= 16:
        return [int(np.count_nonzero(mask == c)) for c in range(num_classes)]
    return np.bincount(mask.ravel(), minlength=num_classes)[:num_classes].tolist()


def write_outputs(paths, original, mask, alpha, names):
    """Writes the `(height, width)` class map as mask, overlay and fractions; returns the
    fractions record."""
    from kerascv_suite.data import write_image

    height, width = original.shape[:2]
    num_classes = len(names)
    counts = class_counts(mask, num_classes)
    fractions = {names[c]: float(counts[c]) / mask.size for c in range(num_classes)}
    atomic_write(paths["mask"], lambda tmp: write_palette_png(tmp, mask))
    atomic_write(paths["overlay"], lambda tmp: write_image(tmp, overlay(original, mask, alpha)))
    record = {"height": height, "width": width, "fractions": fractions}
    atomic_write(paths["fractions"],
                 lambda tmp: tmp.write_text(json.dumps(record, indent=1), encoding="utf-8"))
    return record


def write_summary(out, files, names, skipped, records=None):
    """`fractions.csv`, `fractions.json` (every image done so far) and `skipped.txt`.

    `records` maps a file to its fractions record where this run has it in memory; the
    others (done by earlier runs) are read back from `fractions/`.
    """
    out = Path(out)
    records = records or {}
    rows = {}
    for file, name in zip(files, names):
        if file in records:
            rows[str(file)] = records[file]
            continue
        path = output_paths(out, name)["fractions"]
        if path.is_file():
            rows[str(file)] = json.loads(path.read_text(encoding="utf-8"))
    classes = []
    for record in rows.values():
        classes += [c for c in record["fractions"] if c not in classes]
    (out / "fractions.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    with open(out / "fractions.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "height", "width", *classes])
        for file, record in rows.items():
            writer.writerow([file, record["height"], record["width"],
                             *(f"{record['fractions'].get(c, 0.0):.6f}" for c in classes)])
    write_skipped(out, skipped)


def run(config: SegmentConfig, *, model=None, log=print) -> SegmentResult:
    """Segments `config.folder` into `config.out`.

    Args:
        config: a `SegmentConfig`.
        model: an already loaded `keras.Model` (else `config.model` is resolved).
        log: progress messages.

    Returns:
        A `SegmentResult`.
    """
    import kerascv_suite.layers  # noqa: F401  (custom layers of saved models)
    from kerascv_suite.models.resolve import get_model

    start = time.monotonic()
    model = model if model is not None else get_model(config.model)
    size = model_input_size(model, config.image_size)
    channels = int(model.input_shape[-1])
    num_classes = int(model.output_shape[-1])
    names = [str(n) for n in (config.class_names or range(num_classes))]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for a model of {num_classes} classes. "
                         f"Received: class_names={config.class_names!r}")
    root, out = Path(config.folder), Path(config.out)
    files = list_files(root)
    out_names = output_names(files, root)
    todo = [i for i, name in enumerate(out_names) if config.overwrite or not all(
        p.is_file() for p in output_paths(out, name).values())]
    existing = len(files) - len(todo)
    if existing:
        log(f"{existing} images already segmented in {out} (skipped; --overwrite redoes them).")
    images, failures, done, records = {}, {}, [], {}
    paths = [str(files[i]) for i in todo]
    if paths:
        ds = make_tile_dataset(paths, size, channels, config.batch_size, images, failures,
                               config.mode, config.tile_overlap, config.decode_threads)

        def write(input_id, probabilities):
            index, number = divmod(input_id, _MAX_TILES)
            image = images[index]
            mask = image.add(number, probabilities)
            if mask is None:  # more tiles to come
                return
            del images[index]
            position = todo[index]  # in `files`
            records[files[position]] = write_outputs(output_paths(out, out_names[position]),
                                                     image.original, mask, config.alpha, names)
            done.append(image.layout is not None)

        predict_and_write(ds, config.batch_size,
                          lambda batch: np.asarray(model.predict_on_batch(batch)), write,
                          config.write_threads)
    skipped = sorted((str(Path(paths[i]).relative_to(root)), reason)
                     for i, reason in failures.items())
    out.mkdir(parents=True, exist_ok=True)
    write_summary(out, files, out_names, skipped, records)
    seconds = time.monotonic() - start
    tiled = sum(done)
    log(f"Segmented {len(done)} images ({tiled} tiled) in {seconds:.1f} s into "
        f"{out}{skip_report(skipped)}.")
    return SegmentResult(len(done), existing, skipped, seconds, out, tiled)
