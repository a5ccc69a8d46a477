"""Segment every image of a folder: palette masks, overlays and class pixel fractions.

Files stream through `tf.data` (`folder_io.BatchStream`): decoded in parallel, turned into
model inputs and batched ahead of the model; background writer threads
(`folder_io.predict_and_write`) map the predictions back and write the outputs, so disk
writes overlap the next batch's compute.

How an image of any size meets the model's input (`mode`: resize, tile or auto; resize by
default, as a tool cannot know the scale a model was trained at, and the models trained here
saw whole resized images) is `kerascv_suite.models.segmentation.inference`'s: this module
reads the folder, hands each image's model inputs to the stream, and writes what the
stitched class maps give. Tiles of several images share batches.

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
import json
import time
from pathlib import Path

import numpy as np

from kerascv_suite.models.segmentation.inference import (MODES, MaskStitcher, class_counts,
                                                         cut_tiles, model_input_size,
                                                         model_inputs)
from kerascv_suite.pipelines.folder_io import (BatchStream, atomic_write, list_files,
                                               output_names, predict_and_write, skip_report,
                                               write_skipped)
from kerascv_suite.visualization import overlay_mask, overlay_panel, palette_array

__all__ = ["SegmentConfig", "SegmentResult", "run"]
# A model input's id in the stream: image index * _MAX_TILES + tile number.
_MAX_TILES = 1 << 24


@dataclasses.dataclass
class SegmentConfig:
    """Options of a folder segmentation run.

    Attributes:
        folder: folder of images (searched recursively; every file is tried).
        model: registry name, `.keras` file or MLflow model URI, or an export (`.onnx`,
            `.tflite`, SavedModel folder), run with its runtime, class names from it.
        out: output folder.
        batch_size: model inputs (images or tiles) per predict call.
        overwrite: redo images whose outputs exist.
        class_names: names of the mask values for the fractions (None: `0..K-1`).
        alpha: opacity of the mask in the overlays.
        image_size: input side when the model's input size is not fixed.
        mode: "resize", "tile" or "auto" (see `models.segmentation.inference`).
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


# === Files ===


def write_palette_png(path, mask):
    """A uint8 class map as a palette PNG (VOC colours), as `kerascv_suite.data.write_mask`,
    with fast zlib settings: level 3 writes a typical mask several times faster than
    Pillow's default 6, for a few percent more bytes."""
    from PIL import Image

    image = Image.fromarray(np.asarray(mask, np.uint8))  # 2-D uint8: mode "L"
    image.putpalette(palette_array().tobytes())  # "L" becomes "P" with the same indices
    image.save(path, format="PNG", compress_level=3)


def output_paths(out, name):
    out = Path(out)
    return {"mask": out / "masks" / f"{name}.png",
            "overlay": out / "overlays" / f"{name}.jpg",
            "fractions": out / "fractions" / f"{name}.json"}


# === Pipeline ===


def make_tile_dataset(paths, size, channels, batch_size, images, failures, mode="resize",
                      overlap=0.25, threads=None):
    """A `folder_io.BatchStream` of `(inputs (batch, h, w, channels) uint8, ids (batch,))`.

    Each file becomes one model input (resized) or several (tiles); an input's id is
    `image index * _MAX_TILES + tile number`, and inputs of several images share batches.
    Decoded images land in `images[index]` as `(original RGB image, its MaskStitcher)`;
    files that fail to decode land in `failures[index]` (the reason) and add no input.
    """
    from kerascv_suite.data import decode_image

    height, width = size
    empty = np.zeros((0, height, width, channels), np.uint8), np.zeros(0, np.int64)

    def load(index):
        try:
            image = decode_image(paths[index], channels=3)
            inputs, layout = model_inputs(image, size, channels, mode, overlap)
            if len(inputs) >= _MAX_TILES:
                raise ValueError(f"{len(inputs)} tiles; at most {_MAX_TILES - 1}")
            # One key per thread: atomic.
            images[index] = (image, MaskStitcher(image.shape[:2], layout))
            ids = index * _MAX_TILES + np.arange(len(inputs), dtype=np.int64)
            return inputs, ids
        except Exception as error:  # noqa: BLE001 - one bad file must not stop the folder
            failures[index] = getattr(error, "reason", None) or \
                f"{type(error).__name__}: {error}"
            return empty

    return BatchStream(len(paths), load, batch_size, (height, width, channels), threads=threads)


def write_outputs(paths, original, mask, alpha, names):
    """Writes the `(height, width)` class map as mask, overlay and fractions; returns the
    fractions record."""
    from kerascv_suite.data import write_image

    height, width = original.shape[:2]
    num_classes = len(names)
    counts = class_counts(mask, num_classes)
    fractions = {names[c]: float(counts[c]) / mask.size for c in range(num_classes)}
    atomic_write(paths["mask"], lambda tmp: write_palette_png(tmp, mask))
    atomic_write(paths["overlay"],
                 lambda tmp: write_image(tmp, overlay_mask(original, mask, alpha)))
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

    from kerascv_suite.export import ExportedSegmenter, is_export

    start = time.monotonic()
    carried = None
    if model is None and is_export(config.model):
        # An exported segmenter (ONNX, TFLite, SavedModel), run with its runtime.
        model = ExportedSegmenter(config.model)
        carried = model.class_names
    model = model if model is not None else get_model(config.model)
    size = model_input_size(model, config.image_size)
    channels = int(model.input_shape[-1])
    num_classes = int(model.output_shape[-1])
    names = [str(n) for n in (config.class_names or carried or range(num_classes))]
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
            original, stitcher = images[index]
            mask = stitcher.add(number, probabilities)
            if mask is None:  # more tiles to come
                return
            del images[index]
            position = todo[index]  # in `files`
            records[files[position]] = write_outputs(output_paths(out, out_names[position]),
                                                     original, mask, config.alpha, names)
            done.append(stitcher.layout is not None)

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
