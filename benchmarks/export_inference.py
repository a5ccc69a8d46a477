"""Images/s of exported detectors (SavedModel, ONNX, TFLite) vs the Keras inference path.

For each model: the Keras inference model (`models.detection.Detector`: decode + NMS in the
graph, `predict_on_batch`) and its three exports (`kerascv_suite.export`, run with
TensorFlow, onnxruntime and LiteRT) run on the same images, batch 1 and 8, interleaved
round by round so load changes hit every contender alike. Prints images/s per format and
batch, the ratio export / Keras for each, and the best ratio last. Detections are checked
to match (IoU >= 0.99, scores within 1e-4) before timing.

Default models: SSD300 (VGG16, 300 x 300, 21 classes) and YOLO v1 (448 x 448, 20 classes)
at their paper sizes, built with `build(name)`: random initial weights (speed only; their
detections are those of an untrained net, printed as such), timed `--paper-rounds` rounds
(they take seconds an image on a 2-core CPU; a model whose TFLite / ONNX conversion needs
more memory than the machine has, YOLO v1 on 24 GiB, is timed as SavedModel only); and the
CPU recipe `ssd300_shapes`, trained, timed `--rounds` rounds (as any recipe variant), with
its float16 and int8 TFLite exports too. Each export's size on disk is printed beside its
speed.

Quantization: AP50 on the shapes val split (the recipe's: 160 images at 160 px, seed 0) of
the trained `ssd300_shapes` as the Keras model and as float32, float16 and int8 TFLite
exports (int8 calibrated on 64 images of the recipe's train split), with the change from
float32 (goals: float16 within 0.01, int8 within 0.03). The model is `--checkpoint` (a
trained `ssd300_shapes` .keras file) or, without one, the recipe trained here for
`--train-epochs` epochs (`kcv train-detector --model ssd300`, a short run: 12 epochs gave
val AP50 0.70, below the recipe's 30-epoch 0.99; 6 epochs gave 0.01, too little for the
deltas to mean anything). That model is also the
`ssd300_shapes` of the speed table.

    uptime; nice -n 5 python benchmarks/export_inference.py
        [--models ssd300,yolo_v1,ssd300_shapes] [--checkpoint best.keras]
        [--train-epochs 12] [--rounds 3] [--paper-rounds 2] [--formats saved_model,onnx,tflite]
        [--out /tmp/exports] [--no-ap]

A fast end-to-end run (untrained ssd300_shapes, no AP, about a minute):
    python benchmarks/export_inference.py --models ssd300_shapes --no-ap --rounds 1
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
    """`(model, where its weights come from)`."""
    import keras

    from kerascv_suite.models import build

    if name == "ssd300_shapes" and checkpoint:
        return keras.saving.load_model(checkpoint), f"trained: {checkpoint}"
    return build(name), f"random initial weights (build({name!r}); speed only)"


def is_recipe(name):
    """Whether `name` is a CPU recipe variant (`recipes/<name>.yaml`), timed `--rounds`."""
    from kerascv_suite.models.recipe_variants import RECIPES_DIR

    return (RECIPES_DIR / f"{name}.yaml").is_file()


def size_mb(path):
    """Size on disk of a file or a folder (a SavedModel), in MB."""
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


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
    `(name, ap50)` and the float16 / int8 export paths `{label: path}`."""
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
    print(f"  {'keras':<15} AP50 {rows[0][1]:.4f}")
    paths = {}
    for quantize in (None, "float16", "int8"):
        start = time.perf_counter()
        path = export_model(model, out / f"ssd300_shapes_{quantize or 'float32'}.tflite",
                            "tflite", overwrite=True, quantize=quantize)
        seconds = time.perf_counter() - start
        ap50 = evaluate_detector(ExportedDetector(path), val, names, 8).metrics()["ap50"]
        label = f"tflite {quantize or 'float32'}"
        rows.append((label, ap50))
        if quantize:
            paths[label] = path
        print(f"  {label:<15} AP50 {ap50:.4f}  ({size_mb(path):.2f} MB, "
              f"exported in {seconds:.0f} s)")
    return rows, paths


def timed(function):
    """Seconds of one call (the caller has warmed it up: tracing, allocation)."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="ssd300,yolo_v1,ssd300_shapes")
    parser.add_argument("--checkpoint", default=None,
                        help="A trained ssd300_shapes .keras file (else trained here).")
    parser.add_argument("--train-epochs", type=int, default=12,
                        help="Epochs of the ssd300_shapes training without --checkpoint.")
    parser.add_argument("--no-ap", action="store_true",
                        help="Skip the quantization AP50 (and the training it needs).")
    parser.add_argument("--rounds", type=int, default=3,
                        help="Timed rounds (best of) of CPU recipe models (ssd300_shapes).")
    parser.add_argument("--paper-rounds", type=int, default=2,
                        help="Timed rounds of the paper-size models (ssd300, yolo_v1: "
                             "seconds an image).")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help="Export formats to time. A model whose TFLite / ONNX conversion "
                             "needs more memory than is available (YOLO v1, 272 M "
                             "parameters: about 32 GB) is timed as saved_model only.")
    parser.add_argument("--out", default=None, help="Export folder (default: a temp dir).")
    args = parser.parse_args()

    from kerascv_suite.export import ExportedDetector, export_models, match_detections
    from kerascv_suite.export.formats import check_conversion_memory
    from kerascv_suite.models.detection.inference import Detector

    names = args.models.split(",")
    formats = args.formats.split(",")
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        parser.error(f"--formats takes {', '.join(FORMATS)}. Received: {', '.join(unknown)}")
    out = Path(args.out or tempfile.mkdtemp(prefix="kcv_exports_"))
    print(f"uptime: {os.popen('uptime').read().strip()}")
    checkpoint, ap_rows, quantized = args.checkpoint, None, {}
    if not args.no_ap:
        if checkpoint is None:
            checkpoint = train_recipe(out, args.train_epochs)
        print(f"\nAP50, shapes val split (160 images), ssd300_shapes from {checkpoint}:")
        ap_rows, quantized = quantization_ap(load("ssd300_shapes", checkpoint)[0], out)
    ratios = []
    for name in names:
        model, weights = load(name, checkpoint)
        rounds = args.rounds if is_recipe(name) else args.paper_rounds
        detector = Detector(model)
        convertible = formats
        try:
            check_conversion_memory(model, formats, graph=True)
        except ValueError as error:  # YOLO v1 at 448 px on a 24 GiB machine
            convertible = [f for f in formats if f == "saved_model"]
            print(f"\n{name}: only {convertible or 'no format'} timed: {error}")
        start = time.perf_counter()
        paths = export_models(model, {f: out / f"{name}{SUFFIX[f]}" for f in convertible},
                              overwrite=True)
        if name == "ssd300_shapes":
            paths.update(quantized)
        print(f"\n{name} {detector.input_size}, {weights}: exported in "
              f"{time.perf_counter() - start:.0f} s; {rounds} timed rounds")
        exports = {f: ExportedDetector(p) for f, p in paths.items()}
        sizes = {f: size_mb(p) for f, p in paths.items()}
        for batch in (1, 8):
            images = photos(detector.input_size, batch)
            proposals = None
            if detector.needs_proposals:
                from kerascv_suite.export import random_inputs

                _, proposals = random_inputs((*detector.input_size, 3), batch, True)
            # The first calls warm every contender up (tracing, allocation).
            expected = detector.predict(images, proposals)
            count = np.asarray(expected["num_detections"]).mean()
            print(f"  batch {batch} keras: {count:.1f} detections an image")
            runs = {"keras": lambda: detector.predict(images, proposals)}
            for f, export in exports.items():
                got = export.predict(images, proposals)
                iou, diff, bad = match_detections(expected, got,
                                                  detector.decoder["score_threshold"])
                note = " (quantized: AP50 measured instead)" if " " in f else ""
                print(f"  batch {batch} {f:<15} vs keras: min IoU {iou:.4f}, "
                      f"score diff {diff:.2g}, {bad} unmatched{note}")
                runs[f] = (lambda e: lambda: e.predict(images, proposals))(export)
            seconds = {k: [] for k in runs}
            for _ in range(rounds):  # interleaved: each round times every contender
                for key, run in runs.items():
                    seconds[key].append(timed(run))
            rate = {k: batch / min(v) for k, v in seconds.items()}
            for f in exports:
                ratio = rate[f] / rate["keras"]
                print(f"  batch {batch} {f:<15} {rate[f]:7.2f} img/s vs keras "
                      f"{rate['keras']:7.2f} img/s: {ratio:.2f}x  ({sizes[f]:.1f} MB)")
                ratios.append((ratio, f"{name} b{batch} {f}", rate[f], rate["keras"],
                               sizes[f]))
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
    print("\nexport / keras images/s (ratio order, best last)      size")
    for ratio, label, rate, keras_rate, mb in sorted(ratios):
        print(f"  {label:<34} {rate:8.2f} vs {keras_rate:8.2f} img/s  {ratio:5.2f}x  "
              f"{mb:7.1f} MB")
    ratio, label = max(ratios)[:2]
    print(f"best export / keras ratio: {ratio:.2f}x ({label}); goal >= 1.5x: "
          f"{'met' if ratio >= 1.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
