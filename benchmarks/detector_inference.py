"""Decode + NMS cost of each detector, relative to its forward pass (target <= 0.15).

For each CPU-sized detector at its registered defaults (faster_rcnn_small, fast_rcnn_small,
rcnn_small, ssd300_tiny, yolo_v1_tiny), two compiled functions (`tf.function`, tensorflow
backend) run on the same batch of shapes images:

* forward: the network up to its raw heads, without the detection post-processing.
  - YOLO v1 / SSD: the training model (`(batch, S, S, B*5+C)` grid / `(batch, boxes,
    4+1+C)` offsets and logits).
  - Faster R-CNN: backbone, RPN head, the RPN proposal layer (its own decode + top-k + NMS
    at 0.7: the second stage cannot run without proposals, so it counts as forward; its
    time is also shown on its own, column `rpn_proposals`) and the RoI box head, up to the
    class logits and class-specific deltas.
  - Fast R-CNN: backbone and RoI box head on the given proposals, to logits and deltas.
  - R-CNN: warp of every proposal, CNN features, SVM scores and box regression.
  Selective-search proposals (Fast R-CNN, R-CNN) are computed once, outside both timings:
  they are the models' external input, not part of the graph.
* full: the inference model (`Detector(model).model`, what `kcv detect` and `kcv export`
  run): the forward pass plus softmax / sigmoid, per-class box decoding, clipping and
  class-aware NMS into the padded detection contract.

ratio = (full - forward) / forward = decode+NMS time / forward time. Both functions are
called alternately (so load changes hit both alike), `--calls` times per round; a round
keeps each function's fastest call (on a shared machine the least-disturbed one), and the
table shows the median over rounds. The worst ratio is printed last.

    python benchmarks/detector_inference.py [--batch-size 4] [--rounds 5] [--calls 5]
"""

import argparse
import os
import statistics
import subprocess
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

DETECTORS = ("faster_rcnn_small", "fast_rcnn_small", "rcnn_small", "ssd300_tiny",
             "yolo_v1_tiny")
TARGET = 0.15


def _functions(name, model):
    """`(forward, full, proposal_layer or None, needs_proposals)` as `tf.function`s."""
    import tensorflow as tf
    from keras import ops

    from kerascv_suite.models.detection import proposals as P
    from kerascv_suite.models.detection.inference import Detector

    detector = Detector(model)
    full = tf.function(lambda x: detector.model(x, training=False))
    proposal_layer = None
    if name.startswith(("ssd", "yolo")):
        forward = tf.function(lambda x: model(x, training=False))
    elif name.startswith("faster"):
        def heads(x):
            features = model._features(x, False)
            proposals, _, _ = model._proposals(x, features, False)
            return model.roi_head([features, proposals], training=False)

        def proposals_only(x):
            features = model._features(x, False)
            objectness, deltas = model.rpn_head(features)
            return objectness, deltas

        forward = tf.function(heads)
        rpn = tf.function(proposals_only)
        layer = tf.function(lambda o, d: P.generate_proposals(
            o, d, ops.convert_to_tensor(model.anchors), model.image_shape[:2],
            model.rpn_pre_nms_top_k[1], model.rpn_post_nms_top_k[1], model.rpn_nms_threshold,
            model.rpn_min_size, model.rpn_coder))
        proposal_layer = (rpn, layer)
    elif name.startswith("fast"):
        def heads(x):
            features = model._features(x, False)
            proposals, _, _ = model._proposals(x, features, False)
            return model.roi_head([features, proposals], training=False)

        forward = tf.function(heads)
    else:  # R-CNN
        def heads(x):
            images, proposals, _ = model._proposals(x)
            pool5, fc7 = model.region_features(images, proposals)
            return ops.sigmoid(model.svm(fc7)), model.bbox_pred(pool5)

        forward = tf.function(heads)
    return forward, full, proposal_layer, detector


def _time(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    import tensorflow as tf

    tf.nest.map_structure(lambda t: t.numpy(), out)  # wait for the result
    return time.perf_counter() - start


def measure(name, batch_size, rounds, calls):
    from kerascv_suite.data import make_shapes
    from kerascv_suite.models.registry import build

    model = build(name)
    forward, full, proposal_layer, detector = _functions(name, model)
    size = detector.input_size
    shapes = make_shapes(batch_size, size, seed=0)
    images = np.stack([shapes[i]["image"] for i in range(batch_size)])
    inputs = detector.inputs_for(images)  # selective search once, outside the timings
    for _ in range(2):  # trace and warm up
        _time(forward, inputs)
        _time(full, inputs)
    ratios, forwards, fulls, layers = [], [], [], []
    if proposal_layer is not None:
        rpn, layer = proposal_layer
        objectness, deltas = rpn(inputs)
        _time(layer, objectness, deltas)
    for _ in range(rounds):
        f, g, p = [], [], []
        for _ in range(calls):
            f.append(_time(forward, inputs))
            g.append(_time(full, inputs))
            if proposal_layer is not None:
                p.append(_time(layer, objectness, deltas))
        f, g = min(f), min(g)
        forwards.append(f)
        fulls.append(g)
        ratios.append((g - f) / f)
        if p:
            layers.append(min(p))
    return {"name": name, "input": f"{size[0]}x{size[1]}",
            "forward_ms": 1e3 * statistics.median(forwards),
            "full_ms": 1e3 * statistics.median(fulls),
            "ratio": statistics.median(ratios),
            "rpn_proposals_ms": 1e3 * statistics.median(layers) if layers else None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--models", nargs="*", default=list(DETECTORS))
    args = parser.parse_args()

    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"load before: {load}")
    print(f"batch {args.batch_size}; median over {args.rounds} rounds of the fastest of "
          f"{args.calls} calls")
    header = (f"{'detector':<18} {'input':>7} {'forward ms':>11} {'full ms':>9} "
              f"{'decode+NMS ms':>14} {'ratio':>7} {'rpn_proposals ms':>17}")
    print(header)
    rows = []
    for name in args.models:
        row = measure(name, args.batch_size, args.rounds, args.calls)
        rows.append(row)
        rpn = f"{row['rpn_proposals_ms']:.1f}" if row["rpn_proposals_ms"] is not None else "-"
        print(f"{row['name']:<18} {row['input']:>7} {row['forward_ms']:>11.1f} "
              f"{row['full_ms']:>9.1f} {row['full_ms'] - row['forward_ms']:>14.1f} "
              f"{row['ratio']:>7.3f} {rpn:>17}", flush=True)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"load after: {load}")
    worst = max(rows, key=lambda r: r["ratio"])
    print(f"worst ratio (decode+NMS / forward): {worst['ratio']:.3f} ({worst['name']}; "
          f"target <= {TARGET})")


if __name__ == "__main__":
    main()
