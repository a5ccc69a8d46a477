"""Distributed training: one context manager over tf.distribute and keras.distribution.

The training engine builds and compiles the model inside `distribution_scope(mode)`:

    with distribution_scope("mirrored") as dist:
        model = build(...)
        model.compile(...)
    model.fit(dataset)  # the global batch is split over dist.num_replicas devices

Modes:
    None: no distribution (a no-op scope).
    "mirrored": `tf.distribute.MirroredStrategy` over the local GPUs, or over the logical
        CPU devices when there is no GPU (tensorflow backend).
    "multi_worker": `tf.distribute.MultiWorkerMirroredStrategy`; the cluster and this
        process's role come from the `TF_CONFIG` environment variable (tensorflow backend).
    "data_parallel": `keras.distribution.DataParallel` over all local devices (jax backend).
    "auto": "multi_worker" if `TF_CONFIG` is set, else "mirrored" on tensorflow;
        "data_parallel" on jax; an error on torch (Keras has no distribution for it).

Testing on a CPU-only machine needs several devices, and both frameworks fix their device list
when they initialize. Call `configure_host_devices(n)` first thing in the process, before
TensorFlow or JAX runs any op (for JAX: before `import jax`, because the device count comes
from `XLA_FLAGS=--xla_force_host_platform_device_count=n`, read once at import).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import warnings
from typing import Any

MODES = (None, "mirrored", "multi_worker", "data_parallel", "auto")
_BACKEND_OF_MODE = {
    "mirrored": "tensorflow",
    "multi_worker": "tensorflow",
    "data_parallel": "jax",
}
_XLA_DEVICE_FLAG = "--xla_force_host_platform_device_count"


@dataclasses.dataclass(frozen=True)
class Distribution:
    """What `distribution_scope` set up.

    Attributes:
        mode: the resolved mode (never "auto").
        num_replicas: model replicas that each take a slice of the global batch.
        strategy: the `tf.distribute.Strategy` or `keras.distribution.Distribution` in force,
            or None without distribution.
        is_chief: whether this process should write checkpoints, logs and artifacts
            (only worker 0 does under "multi_worker").
    """

    mode: str | None
    num_replicas: int
    strategy: Any = None
    is_chief: bool = True


def _backend():
    import keras

    return keras.backend.backend()


def configure_host_devices(num_devices=2, backend=None):
    """Splits the host CPU into `num_devices` logical devices for distribution tests.

    Must run before the framework initializes its devices: for tensorflow, before any op or
    device query other than listing physical devices; for jax, before `import jax` (so the
    environment variable is read). Idempotent when the devices are already configured.

    Args:
        num_devices: number of logical CPU devices (at least 1).
        backend: "tensorflow" or "jax"; defaults to the Keras backend.

    Raises:
        RuntimeError: the framework already initialized with a different device count.
    """
    if num_devices < 1:
        raise ValueError(f"num_devices must be >= 1. Received: num_devices={num_devices}")
    backend = backend or os.environ.get("KERAS_BACKEND") or _backend()
    if backend == "jax":
        flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(_XLA_DEVICE_FLAG)]
        os.environ["XLA_FLAGS"] = " ".join([*flags, f"{_XLA_DEVICE_FLAG}={num_devices}"])
        if "jax" in sys.modules:
            import jax

            found = len(jax.devices("cpu"))
            if found != num_devices:
                raise RuntimeError(
                    f"JAX was imported before configure_host_devices and has {found} CPU "
                    f"devices; set XLA_FLAGS={_XLA_DEVICE_FLAG}={num_devices} before importing "
                    f"jax (or keras). Received: num_devices={num_devices}"
                )
        return
    if backend != "tensorflow":
        raise ValueError(
            "configure_host_devices supports the tensorflow and jax backends. "
            f"Received: backend={backend!r}"
        )
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices
        )
    except RuntimeError as e:
        found = len(tf.config.list_logical_devices("CPU"))
        if found != num_devices:
            raise RuntimeError(
                f"TensorFlow already initialized its devices ({found} logical CPU devices); "
                "call configure_host_devices before running any TensorFlow op. "
                f"Received: num_devices={num_devices}"
            ) from e


def _resolve_mode(mode, backend):
    if mode not in MODES:
        raise ValueError(f"Unknown distribution mode; expected one of {MODES}. Received: mode={mode!r}")
    if mode == "auto":
        if backend == "tensorflow":
            return "multi_worker" if os.environ.get("TF_CONFIG") else "mirrored"
        if backend == "jax":
            return "data_parallel"
        raise ValueError(
            "distribution mode 'auto' has nothing to pick on the "
            f"{backend} backend: Keras distributes training on tensorflow (tf.distribute) and "
            f"jax (keras.distribution) only. Received: mode='auto', backend={backend!r}"
        )
    needed = _BACKEND_OF_MODE.get(mode)
    if needed is not None and backend != needed:
        raise ValueError(
            f"distribution mode {mode!r} needs the {needed} backend (set KERAS_BACKEND={needed}"
            f" or use mode='auto'). Received: mode={mode!r}, backend={backend!r}"
        )
    return mode


def _local_tf_devices(tf):
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    if len(devices) == 1:
        warnings.warn(
            f"MirroredStrategy has one device ({devices[0]}), so nothing is distributed. On a "
            "CPU-only machine call configure_host_devices(n) before TensorFlow starts.",
            stacklevel=3,
        )
    return devices


def _collective_dtypes(tf):
    return (tf.bfloat16, tf.float16, tf.float32, tf.float64, tf.int32, tf.int64)


def _structured_reduce_strategy(tf):
    """MultiWorkerMirroredStrategy whose `reduce` copes with what Keras 3 passes it.

    Keras 3's TensorFlow trainer (keras-team/keras#20585) reduces a whole `(x, y)` batch with
    `strategy.reduce` before the first step, which this strategy only supports for a single
    value, and reduces the scalar per-step metrics with `axis=0`, which fails on scalars.
    Reducing leaf by leaf, and over replicas only for scalars, gives the intended results and
    keeps every worker in lockstep.
    """

    class StructuredReduceStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            parent = super()

            def reduce_leaf(v):
                local = self.experimental_local_results(v)[0]
                rank = getattr(getattr(local, "shape", None), "rank", None)
                dtype = getattr(local, "dtype", None)
                if dtype is not None and dtype not in _collective_dtypes(tf):
                    # Collectives take no uint8/bool (e.g. image batches); Keras reduces
                    # the first batch only to learn its structure, shapes and dtypes.
                    as_float = self.run(lambda x: tf.cast(x, tf.float32), args=(v,))
                    reduced = parent.reduce(reduce_op, as_float, None if rank == 0 else axis)
                    return tf.cast(reduced, dtype)
                return parent.reduce(reduce_op, v, None if rank == 0 else axis)

            return tf.nest.map_structure(reduce_leaf, value)

    return StructuredReduceStrategy


def _multi_worker_strategy(tf):
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError(
            "distribution mode 'multi_worker' reads the cluster from the TF_CONFIG environment "
            'variable, e.g. {"cluster": {"worker": ["127.0.0.1:12345", "127.0.0.1:12346"]}, '
            '"task": {"type": "worker", "index": 0}}. Received: TF_CONFIG unset'
        )
    try:
        config = json.loads(raw)
        task = config["task"]
        config["cluster"]["worker"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            "TF_CONFIG must be JSON with 'cluster': {'worker': [...]} and 'task': "
            f"{{'type': ..., 'index': ...}}. Received: TF_CONFIG={raw!r}"
        ) from e
    strategy = _structured_reduce_strategy(tf)()
    is_chief = task.get("type") == "chief" or (
        task.get("type") == "worker" and int(task.get("index", 0)) == 0
        and "chief" not in config["cluster"]
    )
    return strategy, is_chief


def make_distribution(mode=None) -> Distribution:
    """Creates the strategy of `mode` (see module doc) without entering it.

    Under "multi_worker" TensorFlow configures its collective ops when the strategy is
    created, which must happen before any other TensorFlow op runs in the process (seeding,
    tf.data, building a model); so training code creates the distribution first and enters
    `distribution.scope()` later, around building, compiling and fitting.

    Raises:
        ValueError: an unknown mode, a mode the current Keras backend cannot run, or
            "multi_worker" without a valid TF_CONFIG.
    """
    if mode is None:
        return Distribution(mode=None, num_replicas=1)
    backend = _backend()
    mode = _resolve_mode(mode, backend)
    if mode in ("mirrored", "multi_worker"):
        import tensorflow as tf

        if mode == "mirrored":
            strategy, is_chief = tf.distribute.MirroredStrategy(_local_tf_devices(tf)), True
        else:
            strategy, is_chief = _multi_worker_strategy(tf)
        return Distribution(mode, strategy.num_replicas_in_sync, strategy, is_chief)
    import keras

    devices = keras.distribution.list_devices()
    return Distribution(mode, len(devices), keras.distribution.DataParallel(devices=devices))


@contextlib.contextmanager
def distribution_scope(mode=None):
    """Builds and compiles the model inside this scope to train it distributed.

    Args:
        mode: None, "mirrored", "multi_worker", "data_parallel" or "auto" (see module doc),
            or a `Distribution` made earlier by `make_distribution`.

    Yields:
        A `Distribution` with the resolved mode, the number of replicas and the strategy.

    Raises:
        ValueError: see `make_distribution`.
    """
    dist = mode if isinstance(mode, Distribution) else make_distribution(mode)
    if dist.strategy is None:
        yield dist
        return
    if dist.mode in ("mirrored", "multi_worker"):
        with dist.strategy.scope():
            yield dist
        return
    import keras

    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(dist.strategy)
    try:
        yield dist
    finally:
        keras.distribution.set_distribution(previous)
