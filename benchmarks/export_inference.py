"""Images/s of exported detectors (SavedModel, ONNX, TFLite) vs the Keras inference path.

For each model: the Keras inference model (`models.detection.Detector`: decode + NMS in the
graph, `predict_on_batch`) and its three exports (`kerascv_suite.export`, run with
TensorFlow, onnxruntime and LiteRT) run on the same images, batch 1 and 8, interleaved
round by round so load changes hit every contender alike. Prints images/s per format and
batch, the ratio export / Keras for each, and the best ratio last. Detections are checked
to match (IoU >= 0.99, scores within 1e-4) before timing.

Default models: SSD300 (300 x 300) and YOLO v1 (448 x 448) at their paper sizes, and the
CPU recipe `ssd300_shapes` (pass `--checkpoint runs/.../best.keras` for a trained one;
speed does not depend on the weights beyond the number of NMS candidates).

    uptime; python benchmarks/export_inference.py [--models ssd300,yolo_v1,ssd300_shapes]
        [--checkpoint best.keras] [--rounds 3] [--out /tmp/exports]
"""

import argparse
import os
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

    if name == "checkpoint":
        return keras.saving.load_model(checkpoint)
    return build(name)


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
                        help="A trained .keras detector, benchmarked as 'checkpoint'.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=None, help="Export folder (default: a temp dir).")
    args = parser.parse_args()

    from kerascv_suite.export import ExportedDetector, export_models, match_detections
    from kerascv_suite.models.detection.inference import Detector

    names = args.models.split(",") + (["checkpoint"] if args.checkpoint else [])
    out = Path(args.out or tempfile.mkdtemp(prefix="kcv_exports_"))
    print(f"uptime: {os.popen('uptime').read().strip()}")
    best = (0.0, None)
    for name in names:
        model = load(name, args.checkpoint)
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
                if ratio > best[0]:
                    best = (ratio, f"{name} batch {batch} {f}")
    print(f"\nuptime: {os.popen('uptime').read().strip()}")
    print(f"best export / keras ratio: {best[0]:.2f}x ({best[1]})")


if __name__ == "__main__":
    main()
