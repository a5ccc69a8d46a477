"""Batches of augmented samples built by worker processes and fed to `tf.data`.

Python augmentation is GIL-bound: albumentations inside `tf.data.map(num_parallel_calls=...)`
runs at about half the speed of a plain loop on two cores. `DataLoader` therefore decodes,
augments and collates whole batches in worker *processes* and hands finished numpy batches
to `tf.data.Dataset.from_generator`, which feeds `model.fit` under every Keras backend.
Workers write each sample straight into a shared-memory batch slot and send only the slot
number, so the training process spends about 0.1 ms per 224x224 image on input.

Guarantees:
    * Deterministic: the batch with index `b` of epoch `e` depends only on `(seed, e, b)`.
      Work is assigned by batch index and results are reordered, so worker timing never
      changes the output; `num_workers=0` (in-process, for debugging) gives the same batches.
    * Fault tolerant: a sample whose `dataset[i]` or augmentation raises is skipped and its
      reason counted in `stats()` (and in the `skips` report given, per split, with the
      file): `"bad image: <reason>"` for an undecodable image, the reason `kcv data check`
      gives, else the exception type. The batch comes out smaller; no other sample stands
      in for it.
    * Clean shutdown: workers are started with "spawn" (TensorFlow, JAX and torch are not
      fork-safe), ignore SIGINT, exit when the parent dies (SIGTERM/SIGKILL included), and are
      stopped by `close()`, the context manager, garbage collection or interpreter exit.

This module and its worker code import only numpy (plus cv2/albumentations through the
augmenter); TensorFlow is imported only by `as_tf_dataset`.

Example:
    >>> loader = DataLoader(dataset, batch_size=32, augment=build_augmenter("detection"),
    ...                     keys=("images", "boxes", "classes"), max_boxes=50, seed=0)
    >>> ds = loader.as_tf_dataset(x="images", y=("boxes", "classes"))
    >>> model.fit(ds, epochs=10)   # each pass over `ds` is a new, reshuffled epoch
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
import traceback
import weakref

import numpy as np

from kerascv_suite.data.augment import sample_seed

logger = logging.getLogger(__name__)

# Batch key -> sample key.
SAMPLE_KEYS = {
    "images": "image",
    "labels": "label",
    "boxes": "boxes",
    "classes": "classes",
    "masks": "mask",
    "keypoints": "keypoints",
}
TASK_KEYS = {
    "classification": ("images", "labels"),
    "detection": ("images", "boxes", "classes"),
    "segmentation": ("images", "masks"),
}
_MAX_LOGGED_SKIPS = 10


_DTYPES = {"images": np.uint8, "masks": np.uint8, "labels": np.int32, "boxes": np.float32,
           "classes": np.int32, "keypoints": np.float32}


def collate(samples: list[dict], keys, max_boxes: int = 100, out=None) -> tuple[dict, int]:
    """Stacks sample dicts into a batch dict.

    Boxes, classes and keypoints are padded to `max_boxes` rows (zero boxes, class id -1,
    zero keypoints) and truncated beyond it.

    Args:
        samples: sample dicts with equal image sizes.
        keys: batch keys to produce (see `SAMPLE_KEYS`).
        max_boxes: rows of the padded box tensors.
        out: optional dict of preallocated arrays (at least `len(samples)` rows) to write
            into, e.g. views of shared memory; the batch is then made of views of them.

    Returns:
        `(batch, num_truncated)`: arrays `images (batch, height, width, channels)` uint8,
        `labels (batch,)` int32, `boxes (batch, max_boxes, 4)` float32,
        `classes (batch, max_boxes)` int32, `masks (batch, height, width)` uint8,
        `keypoints (batch, max_boxes, num_keypoints, 3)` float32; and the number of samples
        that had more than `max_boxes` boxes.
    """
    n = len(samples)
    batch = {}
    truncated = 0
    for key in keys:
        if key not in SAMPLE_KEYS:
            raise ValueError(f"Unknown batch key. Expected one of {list(SAMPLE_KEYS)}. "
                             f"Received: key={key!r}")
        values = [s[SAMPLE_KEYS[key]] for s in samples]
        if key in ("images", "masks"):
            shape = (n,) + np.shape(values[0])
        elif key == "labels":
            shape = (n,)
        elif key == "keypoints":
            shape = (n, max_boxes) + np.shape(values[0])[1:]
        else:
            shape = (n, max_boxes, 4) if key == "boxes" else (n, max_boxes)
        dest = np.empty(shape, _DTYPES[key]) if out is None else out[key][:n]
        if dest.shape != shape:
            raise ValueError(f"Batch {key!r} of shape {shape} does not fit the loader's "
                             f"{dest.shape}; pass the real image_size= / num_keypoints=.")
        if key == "labels":
            dest[:] = values
        elif key in ("images", "masks"):
            for row, value in enumerate(values):
                if np.shape(value) != shape[1:]:
                    raise ValueError(f"Cannot batch {key!r} of shapes {shape[1:]} and "
                                     f"{np.shape(value)}; resize them (augment=...).")
                dest[row] = value
        else:
            dest.fill(-1 if key == "classes" else 0)
            for row, value in enumerate(values):
                value = np.asarray(value, _DTYPES[key]).reshape((-1,) + shape[2:])
                if key == "boxes" and len(value) > max_boxes:
                    truncated += 1
                dest[row, : min(len(value), max_boxes)] = value[:max_boxes]
        batch[key] = dest
    return batch, truncated


def skip_reason(error) -> str:
    """The reason a sample that raised `error` is counted under: `"bad image: <reason>"`
    for a `BadImageError` (as `kcv data check` and the readers count it), else the exception
    type, plus its `reason` attribute where it has one."""
    from kerascv_suite.data.errors import BadImageError

    if isinstance(error, BadImageError):
        return f"bad image: {error.reason}"
    reason = type(error).__name__
    if isinstance(getattr(error, "reason", None), str):
        reason = f"{reason}: {error.reason}"
    return reason


def load_batch(dataset, augment, indices, epoch, seed, keys, max_boxes, out=None):
    """Reads, augments and collates one batch (into `out`, see `collate`); bad samples are
    skipped, not raised.

    Returns:
        `(batch or None, skipped, num_truncated)` where `skipped` lists
        `(index, path, reason, message)` per skipped sample: `path` is the file at fault
        (the error's `path`) or None, `reason` is `skip_reason(error)`.
    """
    samples, skipped, rows, truncated = [], [], 0, 0
    for index in indices:
        index = int(index)
        try:
            sample = dataset[index]
            if augment is not None:
                sample = augment(sample, seed=sample_seed(seed, epoch, index))
            for key in keys:
                if SAMPLE_KEYS[key] not in sample:
                    raise KeyError(f"sample has no {SAMPLE_KEYS[key]!r} (needed for {key!r})")
        except Exception as error:  # noqa: BLE001 - one bad file must not end the epoch
            # Data errors carry a short `reason` shared by all files with the same problem.
            path = getattr(error, "path", None)
            skipped.append((index, None if path is None else str(path), skip_reason(error),
                            str(error)[:300]))
            continue
        if out is None:
            samples.append(sample)
            continue
        # Write each sample into its row at once: holding a whole batch of arrays makes
        # malloc return and re-fault that memory every batch (about 1 ms per image here).
        truncated += collate([sample], keys, max_boxes, {k: v[rows:] for k, v in out.items()})[1]
        rows += 1
    if out is not None:
        return ({k: v[:rows] for k, v in out.items()} if rows else None), skipped, truncated
    if not samples:
        return None, skipped, 0
    batch, truncated = collate(samples, keys, max_boxes)
    return batch, skipped, truncated


# Iterations ("runs") have ids; a worker skips tasks of runs that ended (a consumer that
# stopped early), read from a small shared table indexed by run id modulo its size.
_RUN_SLOTS = 256


def _slot_layout(spec, batch_size):
    """Byte layout of one batch in shared memory: `[(key, offset, shape, dtype)], size`."""
    layout, offset = [], 0
    for key, (shape, dtype) in spec.items():
        shape = (batch_size,) + tuple(shape[1:])
        layout.append((key, offset, shape, np.dtype(dtype).str))
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        offset += -(-nbytes // 64) * 64
    return layout, offset


def _slot_views(buffer, layout, slot_bytes, slot):
    base = slot * slot_bytes
    return {
        key: np.frombuffer(buffer, dtype, int(np.prod(shape)), base + offset).reshape(shape)
        for key, offset, shape, dtype in layout
    }


def _tune_malloc():
    """Keeps glibc from returning freed image-sized blocks to the OS after every sample.

    By default allocations above 128 KiB (a 224x224 RGB image is 147 KiB) are mmapped and
    unmapped on free, so every augmented image page-faults its memory in afresh; in a worker
    that does nothing but this, that was 10-25% of its CPU time.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    libc.mallopt(m_mmap_threshold, 32 * 2**20)
    libc.mallopt(m_trim_threshold, 256 * 2**20)
    libc.mallopt(m_top_pad, 16 * 2**20)


def _worker_main(payload, blocked_imports, tasks, results, active_runs, buffer, layout,
                 slot_bytes, parent_pid):
    # Ctrl-C reaches the whole process group; the parent alone decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in blocked_imports:
        # albumentations imports torch when it can (0.8 s and hundreds of MB per worker)
        # although numpy pipelines never use it.
        sys.modules.setdefault(name, None)
    try:
        try:
            import cv2

            # Worker processes are the parallelism; cv2's own threads would oversubscribe.
            cv2.setNumThreads(1)
        except ImportError:
            pass
        _tune_malloc()
        dataset, augment, keys, max_boxes, seed = pickle.loads(payload)
    except BaseException:
        results.put(("error", None, (None, traceback.format_exc())))
        # Exit only once the report is in the pipe: returning at once lets the queue's feeder
        # thread die with it, and the parent saw nothing but "exited with code 0".
        results.close()
        results.join_thread()
        sys.exit(1)
    # From here on, exiting must not wait for a parent that stopped reading results.
    results.cancel_join_thread()
    views = {}
    while True:
        # After SIGTERM/SIGKILL of the parent nobody would stop us: notice and leave.
        if os.getppid() != parent_pid:
            return
        try:
            task = tasks.get(timeout=0.5)
        except queue.Empty:
            continue
        if task is None:
            return
        run, epoch, batch_index, indices, slot = task
        key = (run, batch_index)
        if not active_runs[run % _RUN_SLOTS]:
            results.put(("cancelled", key, slot))
            continue
        if slot not in views:
            views[slot] = _slot_views(buffer, layout, slot_bytes, slot)
        try:
            batch, skipped, truncated = load_batch(dataset, augment, indices, epoch, seed,
                                                   keys, max_boxes, out=views[slot])
            size = None if batch is None else len(batch[keys[0]])
            results.put(("ok", key, (slot, size, skipped, truncated)))
        except Exception:  # noqa: BLE001 - reported to, and raised by, the parent
            results.put(("error", key, (slot, traceback.format_exc())))


def _stop_workers(processes, tasks, results):
    for _ in processes:
        try:
            tasks.put_nowait(None)
        except Exception:  # noqa: BLE001 - the queue may already be broken
            pass
    for process in processes:
        process.join(timeout=2.0)
    for process in processes:
        if process.is_alive():
            process.terminate()
            process.join(timeout=2.0)
        if process.is_alive():
            process.kill()
            process.join()
    for q in (tasks, results):
        q.cancel_join_thread()
        q.close()


class _WorkerPool:
    """Worker processes, the shared-memory slots they write batches into, and the routing
    of results to concurrent iterations (tf.data may start an epoch's generator before it
    finalizes the previous one).

    Workers collate straight into a slot and send only its number; the parent copies the
    batch out on receipt and frees the slot. Pickling batches through a pipe instead cost
    the parent several times more CPU, CPU the workers need on a small machine.
    """

    def __init__(self, num_workers, payload, blocked_imports, start_method, spec,
                 batch_size, num_slots):
        ctx = multiprocessing.get_context(start_method)
        self.tasks = ctx.Queue()
        self.results = ctx.Queue()
        self.active_runs = ctx.RawArray("b", _RUN_SLOTS)
        layout, slot_bytes = _slot_layout(spec, batch_size)
        self.buffer = ctx.RawArray("B", num_slots * slot_bytes)
        self.views = [_slot_views(self.buffer, layout, slot_bytes, i) for i in range(num_slots)]
        self.processes = [
            ctx.Process(
                target=_worker_main,
                args=(payload, tuple(blocked_imports), self.tasks, self.results,
                      self.active_runs, self.buffer, layout, slot_bytes, os.getpid()),
                name=f"kcv-loader-{i}",
                daemon=True,
            )
            for i in range(num_workers)
        ]
        for process in self.processes:
            process.start()
        self._finalizer = weakref.finalize(
            self, _stop_workers, self.processes, self.tasks, self.results
        )
        self._lock = threading.RLock()
        self._free_slots = list(range(num_slots))
        self._next_run = 0
        self._pending = {}  # run id -> {batch index: (batch, skipped, truncated)}

    @property
    def pids(self):
        return [p.pid for p in self.processes]

    @property
    def num_runs(self):
        return len(self._pending)

    def begin_run(self):
        with self._lock:
            run = self._next_run
            self._next_run += 1
            self._pending[run] = {}
            self.active_runs[run % _RUN_SLOTS] = 1
            return run

    def end_run(self, run):
        with self._lock:
            self._pending.pop(run, None)
            self.active_runs[run % _RUN_SLOTS] = 0

    def submit(self, run, epoch, batch_index, indices):
        with self._lock:
            while not self._free_slots:
                self._receive()
            self.tasks.put((run, epoch, batch_index, indices, self._free_slots.pop()))

    def result(self, run, batch_index):
        """Blocks until the result of `batch_index` of `run` arrives."""
        while True:
            with self._lock:
                done = self._pending[run]
                if batch_index in done:
                    return done.pop(batch_index)
                self._receive()

    def _receive(self):
        try:
            kind, key, payload = self.results.get(timeout=0.1)
        except queue.Empty:
            dead = [p for p in self.processes if p.exitcode is not None]
            if not dead:
                return
            try:
                # A worker that fails reports why before it exits; the report may have
                # reached the pipe after the wait above timed out.
                kind, key, payload = self.results.get(timeout=1.0)
            except queue.Empty:
                raise RuntimeError(f"Loader worker {dead[0].name} (pid {dead[0].pid}) exited "
                                   f"with code {dead[0].exitcode}.") from None
        if kind == "cancelled":
            self._free_slots.append(payload)
            return
        if kind == "error":
            slot, trace = payload
            if slot is not None:
                self._free_slots.append(slot)
            if key is None:
                raise RuntimeError("A loader worker could not start (unpickling the dataset "
                                   f"and augment failed there):\n{trace}")
            if key[0] in self._pending:
                raise RuntimeError(f"A loader worker failed:\n{trace}")
            return
        slot, size, skipped, truncated = payload
        batch = None
        if size is not None:
            batch = {k: v[:size].copy() for k, v in self.views[slot].items()}
        self._free_slots.append(slot)
        if key[0] in self._pending:
            self._pending[key[0]][key[1]] = (batch, skipped, truncated)

    def close(self):
        self._finalizer()


class DataLoader:
    """Iterates augmented, collated batches of a random-access dataset.

    Args:
        dataset: any object with `len(dataset)` and `dataset[i] -> sample dict`; must be
            picklable when `num_workers > 0` (it is sent to each worker once).
        batch_size: samples per batch (before skipped samples are removed).
        augment: `callable(sample, seed=int) -> sample`, e.g. an `Augmenter`; None passes
            samples through (their images must then share one size).
        keys: batch keys to produce; defaults to the task's (`TASK_KEYS`), the task coming
            from `augment.config.task` or "classification".
        shuffle: reshuffle every epoch with a permutation seeded by `(seed, epoch)`.
        seed: base seed of shuffling and of the per-sample augmentation seeds.
        drop_remainder: drop the last, incomplete batch of an epoch.
        max_boxes: rows of padded `boxes`/`classes`/`keypoints`.
        num_workers: worker processes; None uses every available core; 0 works in-process.
        prefetch: batches in flight ahead of the consumer; defaults to `2 * num_workers`.
        persistent_workers: keep workers between epochs (they start once, in seconds); if
            False they stop when an epoch's iterator ends or is dropped.
        image_size: `(height, width)` of output images (sizes the shared-memory slots and
            the `tf.data` signature); defaults to `augment.output_size`, else read from the
            first sample. Images of another size are an error, not a skip.
        channels: image channels (3 for RGB, 1 for grayscale); defaults to the first
            sample's.
        num_keypoints: keypoints per object; defaults to the first sample's.
        start_method: "spawn" or "forkserver" ("fork" is unsafe with TF/JAX/torch loaded).
        worker_blocked_imports: modules a worker makes unimportable before it unpickles the
            dataset, to keep its start-up light.
        skips: a `kerascv_suite.data.skips.SkipReport` that every skipped sample is added
            to (once per file and reason), under `split`; with a strict report the first
            skip raises its `SkipError`.
        split: the split name skipped samples are counted under in `skips`.
    """

    def __init__(self, dataset, batch_size, *, augment=None, keys=None, shuffle=True, seed=0,
                 drop_remainder=False, max_boxes=100, num_workers=None, prefetch=None,
                 persistent_workers=True, image_size=None, channels=None, num_keypoints=None,
                 start_method="spawn", worker_blocked_imports=("torch",), skips=None,
                 split="train"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
        if keys is None:
            task = getattr(getattr(augment, "config", None), "task", "classification")
            keys = TASK_KEYS[task]
        unknown = [k for k in keys if k not in SAMPLE_KEYS]
        if unknown:
            raise ValueError(f"Unknown batch keys {unknown}. Expected keys from "
                             f"{list(SAMPLE_KEYS)}. Received: keys={keys!r}")
        if num_workers is None:
            num_workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
                else os.cpu_count() or 1
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.augment = augment
        self.keys = tuple(keys)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_remainder = drop_remainder
        self.max_boxes = int(max_boxes)
        self.num_workers = int(num_workers)
        self.prefetch = int(prefetch or 2 * max(self.num_workers, 1))
        self.persistent_workers = persistent_workers
        self.image_size = image_size
        self.channels = None if channels is None else int(channels)
        self.num_keypoints = num_keypoints
        self.start_method = start_method
        self.worker_blocked_imports = tuple(worker_blocked_imports)
        self.skips = skips
        self.split = str(split)
        if skips is not None:
            skips.add_split(self.split)
        self.epoch = 0
        self._pool = None
        self._skipped = collections.Counter()
        self._num_truncated = 0
        self._num_samples = 0

    # === Epochs ===
    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_remainder else -(-n // self.batch_size)

    def set_epoch(self, epoch: int):
        """Sets the epoch the next iteration produces."""
        self.epoch = int(epoch)

    def batch_indices(self, epoch: int) -> list[np.ndarray]:
        """Dataset indices of every batch of `epoch`."""
        n = len(self.dataset)
        order = (np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle
                 else np.arange(n))
        return [order[i : i + self.batch_size] for i in range(0, len(self) * self.batch_size,
                                                               self.batch_size)]

    def __iter__(self):
        """Iterates the current epoch, then advances `epoch` for the next iteration."""
        epoch = self.epoch
        self.epoch += 1
        return self.iter_epoch(epoch)

    def iter_epoch(self, epoch: int):
        """Yields the batch dicts of `epoch`, in order."""
        batches = self.batch_indices(epoch)
        if self.num_workers == 0:
            for indices in batches:
                result = load_batch(self.dataset, self.augment, indices, epoch, self.seed,
                                    self.keys, self.max_boxes)
                batch = self._record(result)
                if batch is not None:
                    yield batch
            return
        pool = self._start()
        run = pool.begin_run()
        submitted = consumed = 0
        try:
            while consumed < len(batches):
                while submitted < len(batches) and submitted - consumed < self.prefetch:
                    pool.submit(run, epoch, submitted, batches[submitted])
                    submitted += 1
                batch = self._record(pool.result(run, consumed))
                consumed += 1
                if batch is not None:
                    yield batch
        finally:
            pool.end_run(run)
            if not self.persistent_workers and pool.num_runs == 0 and self._pool is pool:
                self.close()

    def _record(self, result):
        batch, skipped, truncated = result
        self._num_truncated += truncated
        self._num_samples += 0 if batch is None else len(batch[self.keys[0]])
        for index, path, reason, message in skipped:
            if sum(self._skipped.values()) < _MAX_LOGGED_SKIPS:
                logger.warning("Skipped sample %d: %s: %s", index, reason, message)
            self._skipped[reason] += 1
            if self.skips is not None:
                # The file names the entry; the sample index would count one bad file once
                # per view of it (a training loader and an evaluation pass of the split).
                file = path if path is not None else self._describe(index)
                self.skips.add(self.split, file, None if path is not None else index, reason)
        return batch

    def _describe(self, index):
        describe = getattr(self.dataset, "describe", None)
        return describe(index) if callable(describe) else f"{type(self.dataset).__name__}"

    def stats(self) -> dict:
        """Counts since construction: samples delivered, skipped samples by exception type,
        and samples whose boxes were truncated to `max_boxes`."""
        return {
            "samples": self._num_samples,
            "skipped": dict(self._skipped),
            "truncated_boxes": self._num_truncated,
        }

    # === Workers ===
    def _start(self):
        if self._pool is None:
            try:
                payload = pickle.dumps(
                    (self.dataset, self.augment, self.keys, self.max_boxes, self.seed)
                )
            except Exception as error:
                raise TypeError(
                    "dataset and augment must be picklable to reach worker processes; "
                    f"use num_workers=0 otherwise. Received: {error}"
                ) from error
            self._pool = _WorkerPool(self.num_workers, payload, self.worker_blocked_imports,
                                     self.start_method, self.element_spec(), self.batch_size,
                                     num_slots=self.prefetch)
        return self._pool

    def start_workers(self) -> list[int]:
        """Starts the workers now rather than on first iteration; returns their pids."""
        return self._start().pids if self.num_workers else []

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (empty when none run)."""
        return [] if self._pool is None else self._pool.pids

    def close(self):
        """Stops the worker processes; a later iteration starts new ones."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # === tf.data ===
    def element_spec(self) -> dict:
        """`{key: (shape, numpy dtype)}` of a batch, with `None` as the batch dimension."""
        height, width = self._image_size()
        shapes = {
            "images": ((None, height, width, self._channels()), np.uint8),
            "labels": ((None,), np.int32),
            "boxes": ((None, self.max_boxes, 4), np.float32),
            "classes": ((None, self.max_boxes), np.int32),
            "masks": ((None, height, width), np.uint8),
        }
        if "keypoints" in self.keys:
            shapes["keypoints"] = ((None, self.max_boxes, self._num_keypoints(), 3), np.float32)
        return {key: shapes[key] for key in self.keys}

    def as_tf_dataset(self, x=None, y=None):
        """A `tf.data.Dataset` of this loader's batches; each pass is the next epoch.

        Args:
            x: None yields batch dicts; a key yields `(batch[x], targets)` tuples.
            y: with `x`, a key (`batch[y]`) or a tuple of keys (a dict of those).

        Returns:
            A `tf.data.Dataset`, usable by `model.fit` under every Keras backend.
        """
        import tensorflow as tf

        signature = {
            key: tf.TensorSpec(shape, tf.as_dtype(dtype), name=key)
            for key, (shape, dtype) in self.element_spec().items()
        }
        ds = tf.data.Dataset.from_generator(lambda: iter(self), output_signature=signature)
        if x is not None:
            if isinstance(y, str):
                ds = ds.map(lambda b: (b[x], b[y]))
            else:
                ds = ds.map(lambda b: (b[x], {k: b[k] for k in y}))
        return ds.prefetch(2)

    def _first_sample(self):
        """The first sample that reads and augments, to infer batch shapes.

        Raises:
            DataError: none of the first 16 does; the message names the first failure's
                file and cause (reading or augmenting) and counts the others.
        """
        from kerascv_suite.data.errors import DataError

        failures = []
        count = min(len(self.dataset), 16)
        for index in range(count):
            step = "reading"
            try:
                sample = self.dataset[index]
                step = "augmenting"
                if self.augment is not None:
                    sample = self.augment(sample, seed=0)
                return sample
            except Exception as error:  # noqa: BLE001 - reported below with its cause
                failures.append((index, step, error))
        if not failures:
            raise DataError(f"{self._describe(0)}: the dataset is empty; there is no sample "
                            "to train or evaluate on")
        index, step, error = failures[0]
        where = getattr(error, "path", None) or self._describe(index)
        cause = " ".join(str(error).split()) or type(error).__name__
        others = f"; the other {len(failures) - 1} failed too" if len(failures) > 1 else ""
        raise DataError(f"None of the first {count} samples could be used to infer batch "
                        f"shapes: {step} {where} failed with {type(error).__name__}: "
                        f"{cause}{others}") from error

    def _image_size(self):
        if self.image_size is not None:
            size = self.image_size
            return (size, size) if isinstance(size, int) else tuple(size)
        if hasattr(self.augment, "output_size"):
            return tuple(self.augment.output_size)
        return tuple(self._first_sample()["image"].shape[:2])

    def _channels(self):
        if self.channels is None:
            self.channels = int(np.shape(self._first_sample()["image"])[-1])
        return self.channels

    def _num_keypoints(self):
        if self.num_keypoints is not None:
            return int(self.num_keypoints)
        return int(np.asarray(self._first_sample()["keypoints"]).shape[1])
