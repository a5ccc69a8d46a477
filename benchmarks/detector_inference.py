"""Decode + NMS cost of each detector, relative to its forward pass (target <= 0.15).

The verdict rows are the registered detectors at their paper defaults (`PAPER_DETECTORS`):
faster_rcnn (VGG16, 600x1000), fast_rcnn (VGG16, 600x1000), rcnn (AlexNet warps, 500x500),
ssd300 (VGG16, 300x300, 8,732 default boxes) and yolo_v1 (448x448), each with 20 VOC
classes, at `--paper-batch-size` (1: one image per call, as a CPU serves them; per-call
overheads then weigh most on the small decode+NMS side, so the ratio is not flattered).
The worst of THEIR ratios is printed last; it is the figure the target applies to.

Extra rows, not in the verdict: the CPU-sized variants the shapes recipes train
(`SMALL_DETECTORS`: faster_rcnn_small, fast_rcnn_small, rcnn_small, ssd300_tiny,
yolo_v1_tiny) at `--batch-size`, and any saved detector given to `--models` as a `.keras`
file or MLflow URI (e.g. the checkpoint of `kcv train-detector --model ssd300`, whose
trained scores leave far fewer candidates above the threshold than random weights do).

For each detector three Keras models run on the same batch of shapes images, each through
`predict_on_batch` (so each is compiled exactly as `Detector.predict` compiles the inference
model on the chosen backend):

* forward: images (plus proposals) -> the raw outputs of the last learned layers.
  - YOLO v1: the training model, the `(batch, S, S, B*5+C)` grid.
  - SSD: the training model, `(batch, default boxes, 4+1+C)` offsets and class logits.
  - Faster R-CNN: backbone, RPN head, the RPN proposal layer (its own decode + top-k + NMS
    at 0.7: the second stage cannot run without proposals, so it belongs to the forward
    pass), RoI pooling and the box head, up to the class logits and class-specific deltas
    (with the proposals they refer to).
  - Fast R-CNN: backbone, RoI pooling and box head on the given proposals, to logits and
    deltas.
  - R-CNN: warp of every proposal, CNN features, the SVM scores (before the sigmoid) and
    the class-specific box regression.
* decode+NMS: those precomputed forward outputs -> the detection contract. Everything after
  the last learned layer: the class-score activation (softmax / sigmoid / YOLO's clipped
  confidence x class probability), candidate selection, box decoding, clipping and
  class-aware NMS into the padded `{"boxes", "scores", "classes", "num_detections"}`.
  YOLO v1 / SSD run the model's own decoder layer; the R-CNN family runs the models' own
  `proposals.detect`.
* full: the inference model itself (`Detector(model).model`, what `kcv detect` and
  `kcv export` run), as a cross-check: full ~ forward + decode+NMS. Before timing, the
  decode+NMS output on the forward output must equal the full model's output.

Selective-search proposals (Fast R-CNN, R-CNN; `Detector`'s 300 per image, what
`kcv detect` uses) are computed once, outside every timing: they are the models' external
input, not part of the graph. Untrained (random) weights: their near-uniform scores put
every candidate above the score thresholds, the worst case for NMS. The three models are
called in turn, `--calls` times per round (so load changes hit all alike); a round keeps
each one's fastest call (on a shared machine the least-disturbed one) and the table shows
medians over `--rounds` rounds. Times are wall-clock; `--cpu-time` measures process CPU
time instead (steadier when other jobs share the cores).

ratio = decode+NMS ms / forward ms, both measured directly.

    python benchmarks/detector_inference.py [--batch-size 8] [--paper-batch-size 1]
        [--rounds 5] [--calls 3] [--models ssd300 ssd300_tiny runs/.../best.keras]
"""

import argparse
import os
import statistics
import subprocess
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

# The registered detectors at the papers' sizes: the target applies to these.
PAPER_DETECTORS = ("faster_rcnn", "fast_rcnn", "rcnn", "ssd300", "yolo_v1")
# CPU-sized variants (extra rows).
SMALL_DETECTORS = ("faster_rcnn_small", "fast_rcnn_small", "rcnn_small", "ssd300_tiny",
                   "yolo_v1_tiny")
TARGET = 0.15


class Stage(keras.Model):
    """A function of the detector's tensors as a Keras model (tracks the detector's
    variables so every backend's `predict_on_batch` compiles it like the detector)."""

    def __init__(self, fn, detector=None, **kwargs):
        super().__init__(**kwargs)
        self.fn = fn
        self.detector = detector

    def call(self, inputs):
        return self.fn(inputs)


def _stages(model):
    """`(forward, post)` callables of the detector's tensors."""
    from keras import ops

    from kerascv_suite.models.detection import proposals as P
    from kerascv_suite.models.detection.rcnn import RCNN
    from kerascv_suite.models.detection.single_shot import make_inference_model
    from kerascv_suite.models.detection.two_stage import TwoStageDetector

    if isinstance(model, TwoStageDetector):
        def forward(x):
            features = model._features(x, False)
            proposals, valid, _ = model._proposals(x, features, False)
            logits, deltas = model.roi_head([features, proposals], training=False)
            return {"logits": logits, "deltas": deltas, "rois": proposals, "valid": valid}

        def post(h):
            logits = h["logits"]
            scores = (ops.softmax(logits, axis=-1) if model.classifier_activation == "softmax"
                      else ops.sigmoid(logits))
            return P.detect(scores, h["deltas"], h["rois"], h["valid"], model.image_shape[:2],
                            coder=model.box_coder, score_threshold=model.score_threshold,
                            nms_threshold=model.nms_threshold,
                            max_detections=model.max_detections)
        return forward, post
    if isinstance(model, RCNN):
        def forward(x):
            images, proposals, valid = model._proposals(x)
            pool5, fc7 = model.region_features(images, proposals)
            return {"svm": model.svm(fc7), "regression": model.bbox_pred(pool5),
                    "rois": proposals, "valid": valid}

        def post(h):
            # As `RCNN.call`: sigmoid SVM scores and zero background columns.
            scores = ops.sigmoid(h["svm"])
            scores = ops.concatenate([ops.zeros_like(scores[..., :1]), scores], axis=-1)
            rois = h["rois"]
            deltas = ops.reshape(h["regression"], (-1, rois.shape[1], model.num_classes, 4))
            deltas = ops.concatenate([ops.zeros_like(deltas[:, :, :1]), deltas], axis=2)
            return P.detect(scores, deltas, rois, h["valid"], model.image_shape[:2],
                            coder=model.box_coder, score_threshold=model.score_threshold,
                            nms_threshold=model.nms_threshold,
                            max_detections=model.max_detections)
        return forward, post
    decoder = make_inference_model(model).layers[-1]
    return (lambda x: model(x, training=False)), decoder


def _time(model, inputs, clock=time.perf_counter):
    start = clock()
    keras.tree.map_structure(np.asarray, model.predict_on_batch(inputs))
    return clock() - start


def _same(a, b):
    for key in ("boxes", "scores", "classes", "num_detections"):
        np.testing.assert_allclose(np.asarray(a[key]), np.asarray(b[key]), rtol=1e-4,
                                   atol=1e-3, err_msg=key)


def _load(ref):
    """A registry name built at its defaults, or a saved detector (`.keras` / MLflow URI)."""
    import kerascv_suite.losses  # noqa: F401  (registers SSD / YOLO losses for loading)
    from kerascv_suite.models.resolve import get_model

    return get_model(ref)


def measure(ref, batch_size, rounds, calls, clock=time.perf_counter):
    from kerascv_suite.data import make_shapes
    from kerascv_suite.models.detection.inference import Detector

    model = _load(ref)
    detector = Detector(model)
    forward_fn, post_fn = _stages(model)
    forward = Stage(forward_fn, model, name="forward")
    post = Stage(post_fn, model, name="decode_nms")
    full = detector.model
    size = detector.input_size
    shapes = make_shapes(batch_size, size, seed=0)
    images = np.stack([shapes[i]["image"] for i in range(batch_size)])
    inputs = detector.inputs_for(images)  # selective search once, outside the timings
    heads = keras.tree.map_structure(np.asarray, forward.predict_on_batch(inputs))
    _same(post.predict_on_batch(heads), full.predict_on_batch(inputs))
    # Warm-up calls (the paper-sized ones are slow: one; the graphs are traced by then).
    for _ in range(1 if ref in PAPER_DETECTORS else 2):
        for stage, x in ((forward, inputs), (post, heads), (full, inputs)):
            _time(stage, x)
    times = {"forward": [], "post": [], "full": []}
    for _ in range(rounds):
        best = {key: [] for key in times}
        for _ in range(calls):
            best["forward"].append(_time(forward, inputs, clock))
            best["post"].append(_time(post, heads, clock))
            best["full"].append(_time(full, inputs, clock))
        for key in times:
            times[key].append(min(best[key]))
    ms = {key: 1e3 * statistics.median(value) for key, value in times.items()}
    ratios = [p / f for p, f in zip(times["post"], times["forward"])]
    name = ref if len(ref) <= 18 else "..." + ref[-15:]
    return {"name": name, "input": f"{size[0]}x{size[1]}", "batch": batch_size, **ms,
            "ratio": statistics.median(ratios), "verdict": ref in PAPER_DETECTORS}


def _uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8,
                        help="images per call of the CPU-sized and saved detectors")
    parser.add_argument("--paper-batch-size", type=int, default=1,
                        help="images per call of the paper-sized detectors (the verdict)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--cpu-time", action="store_true",
                        help="process CPU time instead of wall-clock time")
    parser.add_argument("--models", nargs="*",
                        default=list(PAPER_DETECTORS) + list(SMALL_DETECTORS),
                        help="registry names, .keras files or MLflow model URIs")
    args = parser.parse_args()
    clock = time.process_time if args.cpu_time else time.perf_counter

    print(f"load before: {_uptime()}")
    print(f"backend {keras.backend.backend()}, {'CPU' if args.cpu_time else 'wall'} time; "
          f"median over {args.rounds} rounds of the fastest of {args.calls} calls")
    print(f"{'detector':<18} {'input':>8} {'batch':>5} {'forward ms':>11} "
          f"{'decode+NMS ms':>14} {'ratio':>7} {'full ms':>9}")
    rows = []
    for ref in args.models:
        batch = args.paper_batch_size if ref in PAPER_DETECTORS else args.batch_size
        row = measure(ref, batch, args.rounds, args.calls, clock)
        rows.append(row)
        mark = "" if row["verdict"] else "  (extra row)"
        print(f"{row['name']:<18} {row['input']:>8} {row['batch']:>5} {row['forward']:>11.1f} "
              f"{row['post']:>14.1f} {row['ratio']:>7.3f} {row['full']:>9.1f}{mark}",
              flush=True)
    print(f"load after: {_uptime()}")
    extra = [r for r in rows if not r["verdict"]]
    if extra:
        worst = max(extra, key=lambda r: r["ratio"])
        print(f"worst extra-row ratio {worst['ratio']:.3f} ({worst['name']}; not in the "
              f"verdict)")
    verdict = [r for r in rows if r["verdict"]]
    if verdict:
        worst = max(verdict, key=lambda r: r["ratio"])
        print(f"worst ratio {worst['ratio']:.3f} ({worst['name']}; decode+NMS / forward of "
              f"the paper-sized detectors, target <= {TARGET})")


if __name__ == "__main__":
    main()
