"""Segment every image of a folder: palette masks, overlays and class pixel fractions.

The input streams through `tf.data`: file paths are decoded and resized in parallel
(`decode_image` inside `tf.numpy_function`, which runs Python without TensorFlow's GIL-bound
`py_function` machinery), batched and prefetched while the model predicts; results are
written by background threads, so disk writes overlap the next batch's compute.

Every image, of any size, is resized to the model's input; the predicted class
probabilities are resized back to the image's original size (bilinear) before the argmax,
so masks align with the original pixels.

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
    ...                            out="segmented/"))
    >>> result.written, result.skipped
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


@dataclasses.dataclass
class SegmentConfig:
    """Options of a folder segmentation run.

    Attributes:
        folder: folder of images (searched recursively; every file is tried).
        model: registry name, `.keras` file or MLflow model URI.
        out: output folder.
        batch_size: images per predict call.
        overwrite: redo images whose outputs exist.
        class_names: names of the mask values for the fractions (None: `0..K-1`).
        alpha: opacity of the mask in the overlays.
        image_size: input side when the model's input size is not fixed.
        decode_threads: parallel decodes (None: tf.data's AUTOTUNE).
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
    decode_threads: int | None = None
    write_threads: int = 2

    def __post_init__(self):
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1. Received: batch_size={self.batch_size}")
        if not Path(self.folder).is_dir():
            raise FileNotFoundError(f"No such folder: {self.folder}. "
                                    f"Received: folder={self.folder!r}")


@dataclasses.dataclass
class SegmentResult:
    """What a run did: images written, skipped as done, and unreadable files."""

    written: int
    existing: int
    skipped: list  # [(relative path, reason)]
    seconds: float
    out: Path

    @property
    def images_per_second(self):
        return self.written / self.seconds if self.seconds else 0.0


# === Drawing ===


def palette_array():
    """`(256, 3)` uint8 VOC colours (index = class id)."""
    from kerascv_suite.data import voc_palette

    return np.asarray(voc_palette(), np.uint8).reshape(256, 3)


def colorize(mask):
    """`(height, width)` class ids -> `(height, width, 3)` VOC colours."""
    return palette_array()[np.asarray(mask, np.uint8)]


def overlay(image, mask, alpha=0.5):
    """The image with the coloured mask blended over it; background (0) stays unchanged."""
    image = np.asarray(image, np.uint8)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    blended = image.astype(np.float32) * (1 - alpha) + colorize(mask).astype(np.float32) * alpha
    keep = (np.asarray(mask) == 0)[..., None]
    return np.where(keep, image, blended.round().astype(np.uint8)).astype(np.uint8)


def overlay_panel(image, truth, prediction, alpha=0.5):
    """`image | ground truth overlay | prediction overlay`, side by side (training reports)."""
    return np.concatenate([np.asarray(image[..., :3] if image.shape[-1] >= 3 else
                                      np.repeat(image, 3, axis=-1), np.uint8),
                           overlay(image, np.where(truth == 255, 0, truth), alpha),
                           overlay(image, prediction, alpha)], axis=1)


# === Files ===


def list_files(folder):
    """Every regular file under `folder` (sorted, hidden files and folders left out)."""
    root = Path(folder)
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".")]
    return files


def output_names(files, folder):
    """Output name per file: its stem, or stem plus extension where stems collide."""
    root = Path(folder)
    relative = [f.relative_to(root) for f in files]
    stems = [str(r.with_suffix("")) for r in relative]
    counts = {}
    for stem in stems:
        counts[stem] = counts.get(stem, 0) + 1
    names = []
    for rel, stem in zip(relative, stems):
        name = stem if counts[stem] == 1 else f"{stem}_{rel.suffix.lstrip('.')}"
        names.append(name.replace(os.sep, "__"))
    return names


def output_paths(out, name):
    out = Path(out)
    return {"mask": out / "masks" / f"{name}.png",
            "overlay": out / "overlays" / f"{name}.jpg",
            "fractions": out / "fractions" / f"{name}.json"}


def _atomic(path, write):
    """Writes through a temporary name, so an interrupted run never leaves a half file that
    a re-run would take as done."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


# === Pipeline ===


def model_input_size(model, image_size=None):
    height, width = model.input_shape[1:3]
    if height is None or width is None:
        if image_size is None:
            raise ValueError(f"{model.name} takes any input size; pass image_size "
                             f"(--image-size). Received: input_shape={model.input_shape}")
        return int(image_size), int(image_size)
    return int(height), int(width)


def make_dataset(paths, size, channels, batch_size, originals, failures, threads=None):
    """A `tf.data` pipeline of `(images (batch, h, w, channels) uint8, indices (batch,))`.

    Decoded originals are parked in `originals[index]` (for the overlays); files that fail
    to decode land in `failures[index]` and are filtered out of the stream.
    """
    import cv2
    import tensorflow as tf

    from kerascv_suite.data import decode_image

    height, width = size
    lock = threading.Lock()

    def load(index):
        index = int(index)
        try:
            image = decode_image(paths[index], channels=3)
            resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if
                                 image.shape[0] > height else cv2.INTER_LINEAR)
            if channels == 1:
                resized = cv2.cvtColor(resized, cv2.COLOR_RGB2GRAY)[..., None]
            with lock:
                originals[index] = image
            return resized.reshape(height, width, channels), np.int64(index), True
        except Exception as error:  # noqa: BLE001 - one bad file must not stop the folder
            with lock:
                failures[index] = getattr(error, "reason", None) or \
                    f"{type(error).__name__}: {error}"
            return np.zeros((height, width, channels), np.uint8), np.int64(index), False

    def tf_load(index):
        image, index, ok = tf.numpy_function(load, [index], (tf.uint8, tf.int64, tf.bool),
                                             stateful=False)
        image.set_shape((height, width, channels))
        index.set_shape(())
        ok.set_shape(())
        return image, index, ok

    ds = tf.data.Dataset.range(len(paths))
    ds = ds.map(tf_load, num_parallel_calls=threads or tf.data.AUTOTUNE, deterministic=True)
    ds = ds.filter(lambda image, index, ok: ok).map(lambda image, index, ok: (image, index))
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def write_outputs(paths, original, probabilities, alpha, names):
    """Resizes `(h, w, K)` probabilities to the original size, writes mask, overlay and
    fractions; returns the fractions dict."""
    import cv2

    from kerascv_suite.data import write_image, write_mask

    height, width = original.shape[:2]
    num_classes = probabilities.shape[-1]
    probabilities = np.asarray(probabilities, np.float32)
    if probabilities.shape[:2] != (height, width):
        if num_classes <= 512:  # OpenCV's channel limit
            probabilities = cv2.resize(probabilities, (width, height),
                                       interpolation=cv2.INTER_LINEAR)
        else:
            probabilities = np.stack([cv2.resize(probabilities[..., c], (width, height))
                                      for c in range(num_classes)], axis=-1)
        probabilities = probabilities.reshape(height, width, num_classes)
    mask = probabilities.argmax(-1).astype(np.uint8)
    counts = np.bincount(mask.ravel(), minlength=num_classes)[:num_classes]
    fractions = {names[c]: float(counts[c]) / mask.size for c in range(num_classes)}
    _atomic(paths["mask"], lambda tmp: write_mask(tmp, mask))
    _atomic(paths["overlay"], lambda tmp: write_image(tmp, overlay(original, mask, alpha)))
    record = {"height": height, "width": width, "fractions": fractions}
    _atomic(paths["fractions"],
            lambda tmp: tmp.write_text(json.dumps(record, indent=1), encoding="utf-8"))
    return record


def write_summary(out, files, names, skipped):
    """`fractions.csv`, `fractions.json` (every image done so far) and `skipped.txt`."""
    out = Path(out)
    rows = {}
    for file, name in zip(files, names):
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
    (out / "skipped.txt").write_text("".join(f"{name}\t{reason}\n" for name, reason in skipped),
                                     encoding="utf-8")


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
    originals, failures = {}, {}
    paths = [str(files[i]) for i in todo]
    written = 0
    if paths:
        ds = make_dataset(paths, size, channels, config.batch_size, originals, failures,
                          config.decode_threads)
        # Bounded: at most a few batches of full-size results wait for the writers.
        slots = threading.BoundedSemaphore(2 * config.batch_size * config.write_threads)
        futures = []

        def write(index, probabilities):
            try:
                original = originals.pop(index)
                write_outputs(output_paths(out, out_names[todo[index]]), original,
                              probabilities, config.alpha, names)
            finally:
                slots.release()

        with ThreadPoolExecutor(config.write_threads, thread_name_prefix="kcv-write") as pool:
            for images, indices in ds.as_numpy_iterator():
                count = len(images)
                if count < config.batch_size:
                    # A fixed batch shape: no re-trace for the last, smaller batch.
                    pad = np.zeros((config.batch_size - count, *images.shape[1:]), np.uint8)
                    images = np.concatenate([images, pad])
                probabilities = np.asarray(model.predict_on_batch(images))[:count]
                for index, probs in zip(indices, probabilities):
                    slots.acquire()
                    futures.append(pool.submit(write, int(index), probs))
            for future in futures:
                future.result()
                written += 1
    skipped = sorted((str(Path(paths[i]).relative_to(root)), reason)
                     for i, reason in failures.items())
    out.mkdir(parents=True, exist_ok=True)
    write_summary(out, files, out_names, skipped)
    seconds = time.monotonic() - start
    log(f"Segmented {written} images in {seconds:.1f} s into {out}"
        + (f"; skipped {len(skipped)} unreadable: "
           + ", ".join(f"{n} ({r})" for n, r in skipped) if skipped else "") + ".")
    return SegmentResult(written, existing, skipped, seconds, out)
