"""Images/s of exported detectors (SavedModel, ONNX, TFLite) vs the Keras inference path.

For each model: the Keras inference model (`models.detection.Detector`: decode + NMS in the
graph, `predict_on_batch`) and its three exports (`kerascv_suite.export`, run with
TensorFlow, onnxruntime and LiteRT) run on the same images, batch 1 and 8, interleaved
round by round so load changes hit every contender alike. Prints images/s per format and
batch, the ratio export / Keras for each, and the best ratio last. Detections are checked
to match (IoU >= 0.99, scores within 1e-4) before timing.

Default models: SSD300 (300 x 300) and YOLO v1 (448 x 448) at their paper sizes, and the
CPU recipe `ssd300_shapes`, trained.

Quantization: AP50 on the shapes val split (the recipe's: 160 images at 160 px, seed 0) of
the trained `ssd300_shapes` as the Keras model and as float32, float16 and int8 TFLite
exports (int8 calibrated on 64 images of the recipe's train split), with the change from
float32 (goals: float16 within 0.01, int8 within 0.03). The model is `--checkpoint` (a
trained `ssd300_shapes` .keras file) or, without one, the recipe trained here for
`--train-epochs` epochs (`kcv train-detector --model ssd300`, a short run: its AP50 is below
the recipe's 30-epoch 0.99, the deltas are what is measured). That model is also the
`ssd300_shapes` of the speed table.

    uptime; nice -n 5 python benchmarks/export_inference.py
        [--models ssd300,yolo_v1,ssd300_shapes] [--checkpoint best.keras]
        [--train-epochs 6] [--rounds 3] [--out /tmp/exports] [--no-ap]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

FORMATS = ("saved_model", "onnx", "tflite")
SUFFIX = {"saved_model": "", "onnx": ".onnx", "tflite": ".tflite"}


def photos(size, count):
    import cv2
    from skimage import data

    names = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry"]
    height, width = size
    images = [cv2.resize(getattr(data, n)()[..., :3], (width, height)) for n in names]
    return np.stack([images[i % len(images)] for i in range(count)]).astype("float32")


def load(name, checkpoint):
    import keras

    from kerascv_suite.models import build

    if name == "ssd300_shapes" and checkpoint:
        return keras.saving.load_model(checkpoint)
    return build(name)


def train_recipe(folder, epochs):
    """`kcv train-detector --model ssd300` (the ssd300_shapes recipe) for `epochs` epochs;
    returns its best.keras."""
    run_dir = Path(folder) / "ssd300_shapes_run"
    kcv = Path(sys.executable).with_name("kcv")
    command = [str(kcv) if kcv.exists() else "kcv", "train-detector", "--model",
               "ssd300", "--epochs", str(epochs), "--run-dir",
               str(run_dir), "--tracking-uri", f"sqlite:///{Path(folder) / 'mlflow.db'}"]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    print(f"trained ssd300_shapes {epochs} epochs in {time.perf_counter() - start:.0f} s "
          f"(kcv {' '.join(command[1:])})")
    return run_dir / "checkpoints" / "best.keras"


def quantization_ap(model, out):
    """AP50 on the shapes val split: Keras, float32 / float16 / int8 TFLite. Returns rows
    `(name, ap50)`."""
    from kerascv_suite.data import make_shapes
    from kerascv_suite.export import ExportedDetector, export_model
    from kerascv_suite.models import describe
    from kerascv_suite.models.detection.inference import Detector
    from kerascv_suite.tasks.detection import evaluate_detector

    detector = Detector(model)
    # The recipe's val split: shapes_count 800 -> 160 images, seed 0, at its 160 px input.
    val = make_shapes(160, detector.input_size, seed=0, split="val")
    names = describe(model)["class_names"] or ["circle", "square", "triangle"]
    rows = [("keras", evaluate_detector(detector, val, names, 8).metrics()["ap50"])]
    for quantize in (None, "float16", "int8"):
        start = time.perf_counter()
        path = export_model(model, out / f"ssd300_shapes_{quantize or 'float32'}.tflite",
                            "tflite", overwrite=True, quantize=quantize)
        seconds = time.perf_counter() - start
        ap50 = evaluate_detector(ExportedDetector(path), val, names, 8).metrics()["ap50"]
        label = f"tflite {quantize or 'float32'}"
        rows.append((label, ap50))
        print(f"  {label:<15} AP50 {ap50:.4f}  ({os.path.getsize(path) / 1e6:.2f} MB, "
              f"exported in {seconds:.0f} s)")
    return rows


def timed(function, rounds):
    function()  # warm-up (graph tracing, allocation)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="ssd300,yolo_v1,ssd300_shapes")
    parser.add_argument("--checkpoint", default=None,
                        help="A trained ssd300_shapes .keras file (else trained here).")
    parser.add_argument("--train-epochs", type=int, default=6,
                        help="Epochs of the ssd300_shapes training without --checkpoint.")
    parser.add_argument("--no-ap", action="store_true",
                        help="Skip the quantization AP50 (and the training it needs).")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=None, help="Export folder (default: a temp dir).")
    args = parser.parse_args()

    from kerascv_suite.export import ExportedDetector, export_models, match_detections
    from kerascv_suite.models.detection.inference import Detector

    names = args.models.split(",")
    out = Path(args.out or tempfile.mkdtemp(prefix="kcv_exports_"))
    print(f"uptime: {os.popen('uptime').read().strip()}")
    checkpoint, ap_rows = args.checkpoint, None
    if not args.no_ap:
        if checkpoint is None:
            checkpoint = train_recipe(out, args.train_epochs)
        print(f"\nAP50, shapes val split (160 images), ssd300_shapes from {checkpoint}:")
        ap_rows = quantization_ap(load("ssd300_shapes", checkpoint), out)
    ratios = []
    for name in names:
        model = load(name, checkpoint)
        detector = Detector(model)
        start = time.perf_counter()
        paths = export_models(model, {f: out / f"{name}{SUFFIX[f]}" for f in FORMATS},
                              overwrite=True)
        print(f"\n{name} {detector.input_size}: exported in {time.perf_counter() - start:.0f} s")
        exports = {f: ExportedDetector(p) for f, p in paths.items()}
        for batch in (1, 8):
            images = photos(detector.input_size, batch)
            proposals = None
            if detector.needs_proposals:
                from kerascv_suite.export import random_inputs

                _, proposals = random_inputs((*detector.input_size, 3), batch, True)
            expected = detector.predict(images, proposals)
            runs = {"keras": lambda: detector.predict(images, proposals)}
            for f, export in exports.items():
                got = export.predict(images, proposals)
                iou, diff, bad = match_detections(expected, got,
                                                  detector.decoder["score_threshold"])
                print(f"  batch {batch} {f:<11} matches keras: min IoU {iou:.4f}, "
                      f"score diff {diff:.2g}, {bad} unmatched")
                runs[f] = (lambda e: lambda: e.predict(images, proposals))(export)
            seconds = {k: [] for k in runs}
            for _ in range(args.rounds):  # interleaved: each round times every contender
                for key, run in runs.items():
                    seconds[key].append(timed(run, 1))
            rate = {k: batch / min(v) for k, v in seconds.items()}
            for f in FORMATS:
                ratio = rate[f] / rate["keras"]
                print(f"  batch {batch} {f:<11} {rate[f]:7.2f} img/s vs keras "
                      f"{rate['keras']:7.2f} img/s: {ratio:.2f}x")
                ratios.append((ratio, f"{name} b{batch} {f}", rate[f], rate["keras"]))
    print(f"\nuptime: {os.popen('uptime').read().strip()}")
    if ap_rows:
        base = dict(ap_rows)["tflite float32"]
        goals = {"tflite float16": 0.01, "tflite int8": 0.03}
        print("\nAP50 (shapes val)   AP50    vs float32  goal")
        for label, ap50 in ap_rows:
            goal = goals.get(label)
            verdict = "" if goal is None else (
                f"|d| <= {goal}: {'met' if abs(ap50 - base) <= goal else 'NOT met'}")
            print(f"  {label:<17} {ap50:.4f}  {ap50 - base:+.4f}     {verdict}")
    print("\nexport / keras images/s (ratio order, best last)")
    for ratio, label, rate, keras_rate in sorted(ratios):
        print(f"  {label:<30} {rate:8.2f} vs {keras_rate:8.2f} img/s  {ratio:5.2f}x")
    ratio, label, _, _ = max(ratios)
    print(f"best export / keras ratio: {ratio:.2f}x ({label}); goal >= 1.5x: "
          f"{'met' if ratio >= 1.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
