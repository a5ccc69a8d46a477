"""GPU feed: training throughput from device-resident batches vs the kcv input pipeline.

For ResNet-50 at 224 px (classification, class folders of JPEGs) and SSD300 (detection,
the shapes set written as VOC at 300 px) this trains a fixed number of steps and prints
images/s of
    (a) one fixed batch, converted to device tensors once and repeated (the ceiling),
    (b) the kcv input pipeline: the task's `load_data` (`DataLoader` worker processes =
        available cores, tf.data, the training preset's live augmentation) fed to
        `model.fit`, exactly as `kcv train` builds it (`runner.prepare_model` compiles it),
    (c) the same pipeline without augmentation (the eval resize only),
under tensorflow, jax and torch, each in its own subprocess (Keras fixes its backend per
process). The ratio (b)/(a) is printed per model and backend, the worst ratio last. The
goal of issue 15 is >= 0.95 on a 16-core machine with one GPU.

How (a) steps: on tensorflow the compiled `model.train_function` is called on the device
tensors (the call `fit` makes per step, without its tf.data iterator); on jax and torch
`model.fit` runs over a generator that yields the device arrays as they are (Keras passes
jax arrays and torch tensors through untouched). (b) and (c) are one `model.fit` each; the
first `--warmup` steps (compilation, worker start, first batches) are not timed, and the
clock is read after a device sync at both ends.

Mixed precision (`--mixed-precision auto`, the default) is on when the backend sees a GPU
(the runner's policy: mixed_float16 there) and off on CPU, where mixed_float16 is slow;
`on` forces it (mixed_bfloat16 on CPU, as `kcv train --mixed-precision` does there).

Under jax and torch, TensorFlow only runs tf.data: its GPUs are hidden from it first, so it
does not reserve GPU memory beside JAX / torch (kcv train does not do this yet; see the
issue 15 note).

`--profile` adds a breakdown of where the time goes, per model and backend: JPEG read +
decode and augmentation (CPU-ms/image, one thread), the `DataLoader` alone and its tf.data
pipeline alone (images/s over an epoch, the same worker count), the host-to-device hand-off of one batch
(ms/batch, as Keras does it for the backend) and the training step (from (a)).

    python benchmarks/gpu_feed.py [--backends tensorflow,jax,torch] [--models resnet50,ssd300]
        [--steps 20] [--warmup 3] [--mixed-precision auto|on|off] [--profile] [--smoke]

`--smoke` runs tiny variants (a one-block-per-stage resnet18 at 32 px, a 1/16-width
ssd300_tiny at 96 px, batch 4, a few steps) so that the benchmark runs on a CPU in CI (tests/benchmarks).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

BACKENDS = ("tensorflow", "jax", "torch")
RESULT_PREFIX = "GPU_FEED_RESULT "


@dataclasses.dataclass
class Case:
    """One benchmarked model: what `kcv train` is given for it."""

    name: str  # the case's name in the report (the paper model)
    task: str
    model: str  # the registry name actually trained
    size: int  # model input side (px)
    batch_size: int
    augment: str  # the training preset
    source_size: int = 0  # side of the JPEGs written (classification); detection writes `size`
    model_options: dict = dataclasses.field(default_factory=dict)


CASES = {
    "resnet50": Case("resnet50", "classification", "resnet50", 224, 128, "classification",
                     source_size=256),
    "ssd300": Case("ssd300", "detection", "ssd300", 300, 32, "detection"),
}
SMOKE_CASES = {
    "resnet50": Case("resnet50", "classification", "resnet18", 32, 4, "classification",
                     source_size=40, model_options={"stack_sizes": (1, 1, 1, 1)}),
    "ssd300": Case("ssd300", "detection", "ssd300_tiny", 96, 4, "detection",
                   model_options={"width": 1 / 16, "extra_blocks": 1}),
}
NUM_CLASSES = 3


# === Data (written by the parent, which imports no Keras) ===


def write_class_folders(root, count, size, seed=0):
    """`root/train/class_<k>/<i>.jpg`: `count` JPEGs of `size` x `size` in `NUM_CLASSES`
    classes (smooth colour stripes plus noise, so decoding costs about what a photo costs),
    and one image per class in `root/val`."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for split, n in (("train", count), ("val", NUM_CLASSES)):
        for i in range(n):
            label = i % NUM_CLASSES
            folder = Path(root) / split / f"class_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            base = rng.integers(0, 256, 3).astype(np.float32)
            wave = (xx, yy, xx + yy)[label] / rng.uniform(4, 30)
            image = base + 50 * np.sin(wave)[..., None] + rng.normal(0, 12, (size, size, 3))
            cv2.imwrite(str(folder / f"{i}.jpg"), image.clip(0, 255).astype(np.uint8),
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
    return Path(root)


def write_voc_shapes(root, count, size, seed=0):
    """The shapes set as VOC JPEGs at `size` px (what `kcv data make shapes --format voc
    --image-size size` writes): `count` train images and two val images."""
    from kerascv_suite.data import make_shapes, write_dataset

    for split, n in (("train", count), ("val", 2)):
        write_dataset(make_shapes(count=n, image_size=size, num_classes=NUM_CLASSES, seed=seed,
                                  split=split), root, "voc", split)
    return Path(root)


def write_case_data(case, root, count):
    if case.task == "classification":
        return write_class_folders(root, count, case.source_size or case.size)
    return write_voc_shapes(root, count, case.size)


# === Machine facts ===


def uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"load average {os.getloadavg()}"


def cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else os.cpu_count() or 1


def nvidia_gpus():
    """GPU names from `nvidia-smi` (empty without an NVIDIA driver)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def cpu_name():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# === The child: one backend ===


def hide_gpus_from_tensorflow():
    """Under jax / torch, TensorFlow runs tf.data only: without this it would reserve the
    GPU's memory beside the training framework."""
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")


def backend_device(backend):
    """`(on_gpu, device description)` as the backend sees it."""
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return device.platform == "gpu", f"{device.platform}: {device.device_kind}"
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return True, f"cuda: {torch.cuda.get_device_name(0)}"
        return False, f"cpu: {cpu_name()}"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return True, f"gpu: {details.get('device_name', gpus[0].name)}"
    return False, f"cpu: {cpu_name()}"


def sync(value):
    """Waits for the device: a scalar (the loss) read back to the host."""
    import keras

    return float(np.asarray(keras.ops.convert_to_numpy(value)).reshape(-1)[0])


def loss_of(logs):
    return logs["loss"] if "loss" in logs else next(iter(logs.values()))


def step_timer(warmup, steps):
    """A callback that clocks batches `warmup` .. `warmup + steps - 1` of one `fit`."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.start = self.stop = None

        def on_train_batch_end(self, batch, logs=None):
            if batch == warmup - 1:
                sync(loss_of(logs))
                self.start = time.perf_counter()
            elif batch == warmup + steps - 1:
                sync(loss_of(logs))
                self.stop = time.perf_counter()

        @property
        def seconds(self):
            if self.start is None or self.stop is None:
                raise RuntimeError(f"fit ended before step {warmup + steps} (the data ran "
                                   f"out?); pass fewer --steps or write more images.")
            return self.stop - self.start

    return StepTimer()


def to_device(backend, structure, on_gpu):
    """The batch as device tensors of `backend` (the placement Keras would use)."""
    import keras

    if backend == "tensorflow":
        import tensorflow as tf

        with tf.device("/GPU:0" if on_gpu else "/CPU:0"):
            return keras.tree.map_structure(lambda v: tf.identity(tf.convert_to_tensor(v)),
                                            structure)
    if backend == "jax":
        import jax

        return keras.tree.map_structure(lambda v: jax.device_put(np.asarray(v)), structure)
    # torch: keras places tensors on its default device (cuda when there is one).
    return keras.tree.map_structure(lambda v: keras.ops.convert_to_tensor(np.asarray(v)),
                                    structure)


def wait_for(backend, structure):
    """Blocks until the (device) tensors of `structure` exist."""
    import keras

    leaves = keras.tree.flatten(structure)
    if backend == "jax":
        for leaf in leaves:
            leaf.block_until_ready()
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
    else:
        for leaf in leaves:
            np.asarray(leaf[(0,) * len(leaf.shape)])


def ceiling(model, backend, batch, warmup, steps):
    """(a): images/s of `steps` training steps on one device-resident batch."""
    images = int(keras_shape(batch[0])[0])
    if backend == "tensorflow":
        model.make_train_function()
        for _ in range(warmup):
            logs = model.train_function([batch])
        sync(loss_of(logs))
        start = time.perf_counter()
        for _ in range(steps):
            logs = model.train_function([batch])
        sync(loss_of(logs))
        return steps * images / (time.perf_counter() - start)

    def repeat():
        while True:
            yield batch

    timer = step_timer(warmup, steps)
    model.fit(repeat(), steps_per_epoch=warmup + steps, epochs=1, verbose=0,
              shuffle=False, callbacks=[timer])
    return steps * images / timer.seconds


def keras_shape(tensor):
    return tuple(tensor.shape)


def pipeline_rate(model, dataset, batch_size, warmup, steps):
    """(b) / (c): images/s of `model.fit` over the task's tf.data pipeline."""
    timer = step_timer(warmup, steps)
    model.fit(dataset, steps_per_epoch=warmup + steps, epochs=1, verbose=0, shuffle=False,
              callbacks=[timer])
    return steps * batch_size / timer.seconds


def train_config(case, root, args, augment, mixed):
    from kerascv_suite.tasks import load_config

    return load_config(model=case.model, data=str(root), recipe="none",
                       image_size=case.size, batch_size=case.batch_size, augment=augment,
                       model_options=dict(case.model_options), mixed_precision=mixed,
                       workers=args["workers"], epochs=1, seed=0,
                       backend=os.environ.get("KERAS_BACKEND"))


def first_batch(dataset):
    for batch in dataset.take(1):
        return batch
    raise RuntimeError("The training pipeline yielded no batch.")


def profile(case, backend, data_aug, data_plain, on_gpu, step_ms):
    """Where the time goes: one-thread stage costs (CPU-ms of this process, which hardly
    move when other programs load the machine) and each pipeline part alone (images/s over
    one whole epoch, the clock started before the first batch is asked for)."""
    from kerascv_suite.data.augment import sample_seed

    split = data_aug.splits["train"]
    n = min(len(split), 48)
    stages = {}
    start = time.process_time()
    samples = [split[i] for i in range(n)]
    stages["read+decode CPU-ms/image (1 thread)"] = (time.process_time() - start) * 1000 / n
    for name, data in (("augment", data_aug), ("resize only", data_plain)):
        augment = data.train_loader.augment
        augment(samples[0], seed=0)  # builds the albumentations pipeline
        start = time.process_time()
        for i, sample in enumerate(samples):
            augment(sample, seed=sample_seed(0, 1, i))
        stages[f"{name} CPU-ms/image (1 thread)"] = (time.process_time() - start) * 1000 / n
    loader = data_aug.train_loader
    start = time.perf_counter()
    count = sum(len(batch["images"]) for batch in loader.iter_epoch(1000))
    stages[f"DataLoader alone images/s ({loader.num_workers} workers)"] = \
        count / (time.perf_counter() - start)
    start = time.perf_counter()
    dataset = data_aug.train
    count = sum(len(x) for x, _ in (dataset.as_numpy_iterator() if backend != "tensorflow"
                                    else dataset))
    stages["tf.data pipeline alone images/s" + (" (to numpy)" if backend != "tensorflow"
                                                else "")] = \
        count / (time.perf_counter() - start)
    host = next(iter(data_aug.train.take(1).as_numpy_iterator()))
    wait_for(backend, to_device(backend, host, on_gpu))
    start = time.perf_counter()
    for _ in range(5):
        wait_for(backend, to_device(backend, host, on_gpu))
    stages["host-to-device ms/batch"] = (time.perf_counter() - start) * 1000 / 5
    stages["train step ms/batch (a)"] = step_ms
    stages["train step images/s (a)"] = 1000 * case.batch_size / step_ms
    return stages


def run_case(case, root, args, backend, on_gpu, mixed, log):
    import keras

    from kerascv_suite.tasks import get_task
    from kerascv_suite.training.runner import prepare_model
    from kerascv_suite.training.state import RunState

    task = get_task(case.task)
    warmup, steps = args["warmup"], args["steps"]
    with tempfile.TemporaryDirectory(prefix="kcv-gpu-feed-") as run_dir:
        config = train_config(case, root, args, case.augment, mixed)
        data_aug = task.load_data(config, Path(run_dir), log)
        data_plain = task.load_data(train_config(case, root, args, None, mixed),
                                    Path(run_dir), log)
        try:
            keras.utils.set_random_seed(0)
            model, _ = prepare_model(task, config, data_aug, RunState(), Path(run_dir),
                                     log=log)
            task.prepare_fit(model, config, data_aug)
            result = {"case": case.name, "model": case.model, "backend": backend,
                      "batch_size": case.batch_size, "size": case.size,
                      "workers": data_aug.train_loader.num_workers,
                      "mixed_precision": keras.mixed_precision.dtype_policy().name,
                      "params": int(model.count_params())}
            start = time.perf_counter()
            result["b"] = pipeline_rate(model, data_aug.train, case.batch_size, warmup, steps)
            result["compile_and_b_s"] = time.perf_counter() - start
            batch = to_device(backend, tuple(first_batch(data_aug.train)), on_gpu)
            result["a"] = ceiling(model, backend, batch, warmup, steps)
            result["c"] = pipeline_rate(model, data_plain.train, case.batch_size, warmup,
                                        steps)
            result["skipped"] = data_aug.train_loader.stats()["skipped"]
            if args["profile"]:
                result["profile"] = profile(case, backend, data_aug, data_plain, on_gpu,
                                            1000 * case.batch_size / result["a"])
        finally:
            data_aug.close()
            data_plain.close()
    return result


def child_main(spec):
    """Runs every case under this process's backend; prints one result line per case."""
    args = json.loads(spec)
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend != "tensorflow":
        hide_gpus_from_tensorflow()
    import keras

    on_gpu, device = backend_device(backend)
    mixed = {"on": True, "off": False}.get(args["mixed_precision"], on_gpu)
    if mixed:
        from kerascv_suite.training.runner import mixed_precision_policy

        keras.mixed_precision.set_global_policy(mixed_precision_policy())
    print(f"[{backend}] keras {keras.__version__}, device {device}, mixed precision "
          f"{keras.mixed_precision.dtype_policy().name}", flush=True)
    cases = SMOKE_CASES if args["smoke"] else CASES
    for name in args["models"]:
        case = cases[name]
        start = time.perf_counter()
        result = run_case(case, args["roots"][name], args, backend, on_gpu, mixed,
                          log=lambda *a: None)
        result["device"] = device
        print(f"[{backend}] {name} ({case.model}): {time.perf_counter() - start:.0f} s, "
              f"first fit (compilation, workers) {result['compile_and_b_s']:.0f} s",
              flush=True)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


# === The parent: data, one subprocess per backend, the report ===


def run_backend(backend, spec, timeout):
    """Runs the child for `backend`; returns `(results, error or None)`."""
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONUNBUFFERED": "1",
           "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    command = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]
    results, lines = [], []
    try:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
    except OSError as error:
        return [], f"could not start: {error}"
    # A silent child (a long compilation) is killed on time too, not at its next line.
    watchdog = threading.Timer(timeout, process.kill) if timeout else None
    if watchdog:
        watchdog.start()
    try:
        for line in process.stdout:
            if line.startswith(RESULT_PREFIX):
                results.append(json.loads(line[len(RESULT_PREFIX):]))
                continue
            lines.append(line.rstrip())
            if line.startswith(f"[{backend}]"):
                print(line.rstrip(), flush=True)
        code = process.wait(timeout=60)
    finally:
        if watchdog:
            watchdog.cancel()
        if process.poll() is None:
            process.kill()
    if watchdog and code == -9:
        return results, f"killed after the --timeout of {timeout:.0f} s"
    if code != 0:
        tail = "\n    ".join(lines[-15:])
        return results, f"exit code {code}; last output:\n    {tail}"
    return results, None


def report(results, errors, args):
    """The printed table; the worst (b)/(a) ratio is the last line."""
    print()
    print(f"{'model':10s} {'trained':12s} {'backend':10s} {'batch':>5s} {'px':>4s} "
          f"{'(a) ceiling':>12s} {'(b) kcv+aug':>12s} {'(c) kcv':>10s} {'(b)/(a)':>8s} "
          f"{'(c)/(a)':>8s}  precision")
    for r in results:
        print(f"{r['case']:10s} {r['model']:12s} {r['backend']:10s} {r['batch_size']:5d} "
              f"{r['size']:4d} {r['a']:12.1f} {r['b']:12.1f} {r['c']:10.1f} "
              f"{r['b'] / r['a']:8.3f} {r['c'] / r['a']:8.3f}  {r['mixed_precision']}")
    print("(images/s; workers per pipeline: "
          f"{sorted({r['workers'] for r in results}) or '-'}; devices: "
          f"{sorted({r['device'] for r in results}) or '-'})")
    if args.profile:
        for r in results:
            print(f"\nprofile {r['case']} ({r['model']}) {r['backend']}, batch "
                  f"{r['batch_size']}, {r['workers']} workers:")
            for name, value in r["profile"].items():
                print(f"    {name:48s} {value:10.2f}")
    for backend, error in errors.items():
        print(f"\n{backend}: FAILED ({error})")
    print(f"\nuptime after: {uptime()}")
    ratios = sorted(((r["b"] / r["a"], r["case"], r["backend"]) for r in results),
                    reverse=True)
    for ratio, case, backend in ratios:
        print(f"ratio (b)/(a) {case} {backend}: {ratio:.3f}")
    if ratios:
        ratio, case, backend = ratios[-1]
        print(f"worst ratio (b)/(a): {ratio:.3f} ({case}, {backend})")
    else:
        print("worst ratio (b)/(a): none measured")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="comma-separated Keras backends")
    parser.add_argument("--models", default=",".join(CASES), help="comma-separated cases")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per measurement (default 20; smoke 3)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed steps first (default 3; smoke 2)")
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader worker processes (default: every available core)")
    parser.add_argument("--mixed-precision", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--profile", action="store_true", help="time each stage too")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CPU CI")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds allowed per backend subprocess")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.backends = [b for b in args.backends.split(",") if b]
    args.models = [m for m in args.models.split(",") if m]
    for backend in args.backends:
        if backend not in BACKENDS:
            parser.error(f"--backends takes {BACKENDS}. Received: {backend!r}")
    for model in args.models:
        if model not in CASES:
            parser.error(f"--models takes {tuple(CASES)}. Received: {model!r}")
    args.steps = args.steps or (3 if args.smoke else 20)
    args.warmup = args.warmup or (2 if args.smoke else 3)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be >= 1.")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.child is not None:
        return child_main(args.child)
    gpus = nvidia_gpus()
    print(f"uptime: {uptime()}")
    print(f"cores: {cores()} ({cpu_name()}); GPU: {'; '.join(gpus) if gpus else 'none'}")
    cases = SMOKE_CASES if args.smoke else CASES
    # Enough images for one pass of warm-up + timed steps (no epoch boundary is timed).
    count = args.warmup + args.steps + 1
    with tempfile.TemporaryDirectory(prefix="kcv-gpu-feed-data-") as tmp:
        roots = {}
        start = time.perf_counter()
        for name in args.models:
            case = cases[name]
            roots[name] = str(write_case_data(case, Path(tmp) / name,
                                              count * case.batch_size))
        print(f"data: {', '.join(f'{n} {count * cases[n].batch_size} JPEGs' for n in roots)} "
              f"written in {time.perf_counter() - start:.1f} s")
        spec = {"models": args.models, "roots": roots, "steps": args.steps,
                "warmup": args.warmup, "workers": args.workers, "smoke": args.smoke,
                "profile": args.profile, "mixed_precision": args.mixed_precision}
        results, errors = [], {}
        for backend in args.backends:
            start = time.perf_counter()
            found, error = run_backend(backend, spec, args.timeout)
            results.extend(found)
            if error:
                errors[backend] = error
            print(f"[{backend}] {len(found)} case(s) in {time.perf_counter() - start:.0f} s",
                  flush=True)
    report(results, errors, args)
    return 1 if errors or not results else 0


if __name__ == "__main__":
    sys.exit(main())
