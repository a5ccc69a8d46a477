"""What the folder-prediction pipelines (`kcv segment`, `kcv detect`) share.

* `list_files` / `output_names`: every file of a folder, and a collision-free output name
  per file;
* `make_dataset` (a `BatchStream`): a `tf.data` stream of images decoded and resized in
  parallel (`kerascv_suite.data.resize_image`, the evaluation augmenters' resize), where
  unreadable files are recorded and left out instead of stopping the run;
* `predict_and_write`: batched predictions handed to background writer threads (disk writes
  overlap the next batch's compute), with a bounded queue;
* `atomic_write`, `skip_report`.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from kerascv_suite.data.image_io import decode_image, resize_image


def list_files(folder):
    """Every regular file under `folder` (sorted, hidden files and folders left out).

    Raises:
        DataError: `folder` holds no such file.
    """
    from kerascv_suite.data.errors import DataError

    root = Path(folder)
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".")]
    if not files:
        raise DataError(f"No files in {root} (searched recursively, hidden ones left out): "
                        f"put images there or pass another folder. Received: {folder}")
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


def atomic_write(path, write):
    """Writes through a temporary name, so an interrupted run never leaves a half file that
    a re-run would take as done. `write(tmp_path)` writes the content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


def decode_threads(threads=None):
    """Parallel decodes: `threads`, or one per core (at most 4) when None."""
    return max(1, int(threads)) if threads else min(4, os.cpu_count() or 1)


class BatchStream:
    """A `tf.data` stream of model-input batches, decoded in parallel, in file order.

    `load(index)` turns file `index` into `(inputs (n, *sample_shape), ids (n,))` (`n` may
    be 0, for a file it could not read, or several, for tiles). The pipeline: groups of
    consecutive files -> `map(load)` in `threads` parallel calls (deterministic order) ->
    `unbatch` -> `batch(batch_size)` (the last batch may be smaller) -> `prefetch`. One
    `tf.numpy_function` call loads a whole group, so the Python hand-off is paid per group,
    not per image (per image it cost about as much CPU again as the decode itself); Pillow
    and OpenCV release the GIL while they decode and resize, so the calls run in parallel.
    About `lookahead` files are decoded ahead of the batch being consumed, so memory stays
    bounded, and a consumer that stops early (a writer failed) cancels the rest.

    Iterating yields `(inputs (batch, *sample_shape), ids (batch,) int64)` numpy arrays;
    each iteration decodes the files anew.
    """

    def __init__(self, count, load, batch_size, sample_shape, dtype="uint8", threads=None,
                 lookahead=None):
        self.count = int(count)
        self.load = load
        self.batch_size = int(batch_size)
        self.sample_shape = tuple(sample_shape)
        self.dtype = np.dtype(dtype)
        self.threads = decode_threads(threads)
        lookahead = lookahead or 2 * self.batch_size + self.threads
        # Up to 2 * threads groups are in flight or buffered by the parallel map.
        self.group = max(1, lookahead // (2 * self.threads))

    def _load_group(self, start):
        start = int(start)
        parts = [self.load(i) for i in range(start, min(start + self.group, self.count))]
        inputs = np.concatenate([np.asarray(p[0], self.dtype).reshape(-1, *self.sample_shape)
                                 for p in parts])
        return inputs, np.concatenate([np.asarray(p[1], np.int64) for p in parts])

    def dataset(self):
        """The `tf.data.Dataset` of `(inputs, ids)` batches."""
        import tensorflow as tf

        def load(start):
            inputs, ids = tf.numpy_function(self._load_group, [start],
                                            (tf.as_dtype(self.dtype), tf.int64))
            return (tf.ensure_shape(inputs, (None, *self.sample_shape)),
                    tf.ensure_shape(ids, (None,)))

        ds = tf.data.Dataset.range(0, self.count, self.group)
        ds = ds.map(load, num_parallel_calls=self.threads, deterministic=True)
        return ds.unbatch().batch(self.batch_size).prefetch(1)

    def __iter__(self):
        yield from self.dataset().as_numpy_iterator()


def make_dataset(paths, size, channels, batch_size, originals, failures, threads=None,
                 prepare=None):
    """A `BatchStream` of `(images (batch, h, w, channels) uint8, indices (batch,))`.

    Files are decoded with `kerascv_suite.data.decode_image` in parallel map calls. Decoded
    originals are parked in `originals[index]`; files that fail to decode land in
    `failures[index]` (the reason) and are left out of the stream.

    Args:
        paths: file paths.
        size: `(height, width)` of the model input.
        channels: 1 or 3.
        batch_size: images per batch.
        originals, failures: dicts filled by the decoding threads.
        threads: parallel decodes (None: one per core, at most 4).
        prepare: `prepare(image, size) -> (height, width, 3)` uint8;
            `kerascv_suite.data.resize_image` (the evaluation augmenters' resize) when None.
    """
    import cv2

    height, width = size
    prepare = prepare or resize_image
    empty = np.zeros((0, height, width, channels), np.uint8), np.zeros(0, np.int64)

    def load(index):
        try:
            image = decode_image(paths[index], channels=3)
            resized = prepare(image, size)
            if channels == 1:
                resized = cv2.cvtColor(resized, cv2.COLOR_RGB2GRAY)[..., None]
            originals[index] = image  # one key per thread: dict assignment is atomic
            return resized.reshape(1, height, width, channels), np.asarray([index], np.int64)
        except Exception as error:  # noqa: BLE001 - one bad file must not stop the folder
            failures[index] = getattr(error, "reason", None) or \
                f"{type(error).__name__}: {error}"
            return empty

    return BatchStream(len(paths), load, batch_size, (height, width, channels), threads=threads)


def predict_and_write(ds, batch_size, predict, write, write_threads=2):
    """Runs `predict` on every batch of `ds` and `write` on every result in writer threads.

    Args:
        ds: a `BatchStream` (`make_dataset`), or any iterable of `(inputs, indices)`
            numpy batches.
        batch_size: its batch size; the last, smaller batch is zero-padded to it, so the
            model sees one input shape (no re-trace).
        predict: `predict(images) -> per-image results` (anything indexable by image).
        write: `write(index, result)`, called in a writer thread.
        write_threads: background writer threads.

    Returns:
        The number of results written. A writer's exception is re-raised here.
    """
    # Bounded: at most a few batches of full-size results wait for the writers.
    slots = threading.BoundedSemaphore(2 * batch_size * write_threads)
    futures = []

    def guarded(index, result):
        try:
            write(index, result)
        finally:
            slots.release()

    with ThreadPoolExecutor(write_threads, thread_name_prefix="kcv-write") as pool:
        for images, indices in ds:
            count = len(images)
            if count < batch_size:
                pad = np.zeros((batch_size - count, *images.shape[1:]), images.dtype)
                images = np.concatenate([images, pad])
            results = predict(images)
            for position, index in enumerate(indices):
                slots.acquire()
                futures.append(pool.submit(guarded, int(index), _row(results, position)))
        for future in futures:
            future.result()
    return len(futures)


def _row(results, position):
    if isinstance(results, dict):
        return {key: value[position] for key, value in results.items()}
    return results[position]


def skip_report(skipped):
    """`"; skipped N unreadable: a (why), b (why)"`, or `""` when nothing was skipped."""
    if not skipped:
        return ""
    return (f"; skipped {len(skipped)} unreadable: "
            + ", ".join(f"{name} ({reason})" for name, reason in skipped))


def write_skipped(out, skipped):
    """`skipped.txt`: one `relative path<TAB>reason` line per unreadable file."""
    (Path(out) / "skipped.txt").write_text(
        "".join(f"{name}\t{reason}\n" for name, reason in skipped), encoding="utf-8")
