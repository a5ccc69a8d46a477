"""`batched_nms` against `torchvision.ops.nms`: time and peak memory, 1k to 20k boxes.

One image of RPN-like boxes (centres uniform on a 1000 x 600 image, sides 32..512 px
log-uniform, aspect ratios 1:2..2:1, clipped), distinct random scores in (0, 1], class-agnostic NMS
at IoU 0.7 (Ren et al. 2015's RPN). Two settings of ours per size:

* all: `max_detections` = the number of boxes, so every kept box comes back: the same
  output as torchvision's (checked: the kept indices must be equal);
* top 2000: the RPN's post-NMS count (the blockwise loop stops once 2,000 are kept); its
  indices must be torchvision's first 2,000.

Ours runs through a Keras model's `predict_on_batch` (compiled as detectors are on the
chosen backend, `KERAS_BACKEND`, default tensorflow); torchvision's C++ CPU kernel runs on
a torch tensor. Every (implementation, size) runs in a fresh process, so its peak is its
own: memory = growth of the peak resident set (/proc/self/status VmHWM, reset before the
first call) over the resident set then (ours includes compiling); time = the fastest of `--repeats` calls after a
warm-up call. The pairs run side by side, size by size.

ratio = ours / torchvision (time, memory).

    python benchmarks/nms.py [--sizes 1000 6000 12000 20000] [--repeats 3]
"""

import argparse
import json
import os
import runpy
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TORCHVISION_LOADER = (Path(__file__).resolve().parents[1].parent / "shared" / "tools"
                      / "torchvision_cpu" / "load.py")
IOU = 0.7
RPN_POST_NMS = 2000


def make_boxes(n, seed=0):
    """`(boxes (n, 4) xyxy float32, scores (n,) float32)`."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform(0, 1, (n, 2)) * [1000, 600]
    side = np.exp(rng.uniform(np.log(32), np.log(512), n))
    ratio = np.exp(rng.uniform(np.log(0.5), np.log(2.0), n))
    half = np.stack([side * np.sqrt(ratio), side / np.sqrt(ratio)], -1) / 2
    boxes = np.concatenate([centre - half, centre + half], -1)
    boxes = np.clip(boxes, 0, [1000, 600, 1000, 600]).astype("float32")
    scores = ((rng.permutation(n) + 1) / n).astype("float32")  # all above threshold 0
    return boxes, scores


def _status_mb(field):
    """A /proc/self/status size in MB (`ru_maxrss` would carry the parent's peak over exec)."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines()
                if x.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def _child(impl, n, repeats):
    """Runs one measurement; prints a JSON line."""
    boxes, scores = make_boxes(n)
    if impl == "torchvision":
        import torch

        torchvision = runpy.run_path(str(TORCHVISION_LOADER))["torchvision"]
        b, s = torch.from_numpy(boxes), torch.from_numpy(scores)
        run = lambda: torchvision.ops.nms(b, s, IOU).numpy()
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras

        from kerascv_suite.bounding_box import batched_nms

        limit = n if impl == "all" else min(n, RPN_POST_NMS)

        class NMS(keras.layers.Layer):
            def call(self, boxes, scores):
                return batched_nms(boxes, scores, None, iou_threshold=IOU,
                                   max_detections=limit)

        inputs = [keras.Input((n, 4)), keras.Input((n,))]
        model = keras.Model(inputs, NMS()(*inputs))

        def run():
            out = model.predict_on_batch([boxes[None], scores[None]])
            return np.asarray(out["indices"])[0, :int(np.asarray(out["num_detections"])[0])]
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the resident set
    before = _status_mb("VmRSS")
    kept = run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        kept = run()
        best = min(best, time.perf_counter() - start)
    print(json.dumps({"ms": best * 1e3, "mb": _status_mb("VmHWM") - before,
                      "kept": np.asarray(kept).tolist()}))


def _measure(impl, n, repeats):
    result = subprocess.run([sys.executable, __file__, "--child", impl, "--sizes", str(n),
                             "--repeats", str(repeats)], capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{impl} at {n} boxes failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 6000, 12000, 20000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=["all", "top", "torchvision"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args.child, args.sizes[0], args.repeats)
    if not TORCHVISION_LOADER.exists():
        sys.exit(f"needs the torchvision loader at {TORCHVISION_LOADER}")
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    print(f"load before: {_uptime()}")
    print(f"backend {backend}; one image, IoU {IOU}; fastest of {args.repeats} calls; "
          "memory = peak RSS growth")
    print(f"{'boxes':>6} {'kept':>6} | {'ours all ms':>11} {'top2000 ms':>10} "
          f"{'torchvision ms':>14} {'ratio':>6} {'top ratio':>9} | {'ours MB':>7} "
          f"{'top MB':>6} {'tv MB':>6} {'ratio':>6}")
    for n in args.sizes:
        tv = _measure("torchvision", n, args.repeats)
        ours = _measure("all", n, args.repeats)
        top = _measure("top", n, args.repeats)
        if ours["kept"] != tv["kept"] or top["kept"] != tv["kept"][:RPN_POST_NMS]:
            raise SystemExit(f"kept indices differ from torchvision's at {n} boxes")
        print(f"{n:>6} {len(tv['kept']):>6} | {ours['ms']:>11.1f} {top['ms']:>10.1f} "
              f"{tv['ms']:>14.1f} {ours['ms'] / tv['ms']:>6.2f} {top['ms'] / tv['ms']:>9.2f} | "
              f"{ours['mb']:>7.0f} {top['mb']:>6.0f} {tv['mb']:>6.0f} "
              f"{ours['mb'] / max(tv['mb'], 1.0):>6.1f}")
    print(f"load after: {_uptime()}")


if __name__ == "__main__":
    main()
