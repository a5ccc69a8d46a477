"""COCO mask evaluation speed: `coco_evaluate(..., iou_type="segm")` vs pycocotools' COCOeval.

Builds one synthetic set (default 2000 images of 640x480, 10 categories, 1-6 objects per
image, about 10% crowd regions, some empty images). Ground truth is polygons (1-2 parts, as
COCO's instances), crowd regions uncompressed RLE; detections are compressed RLE results of
jittered ground-truth polygons (some with the wrong class) plus random false positives. Then,
in the same process, one after the other:

    pycocotools: COCOeval(gt, results, "segm") + evaluate() + accumulate() + summarize()
                 (its prints suppressed; building the COCO index and loadRes, which computes
                 the result areas, are NOT timed, which favours pycocotools)
    ours:        coco_evaluate(gt_dict, results_list, iou_type="segm"), everything from the
                 raw dicts (string decoding, polygon rasterization, IoU, matching)

asserts that the 12 statistics agree to 1e-6 and prints both times, the machine load
(`uptime`), then the ratio `pycocotools time / our time` last.

    python benchmarks/coco_eval_segm.py [--images 2000] [--categories 10] [--seed 0]
                                        [--repeats 1]
"""

import argparse
import contextlib
import copy
import io
import subprocess
import time

import numpy as np


def _polygon(rng, cx, cy, rx, ry):
    n = int(rng.integers(5, 16))
    angle = np.sort(rng.uniform(0, 2 * np.pi, n))
    radius = rng.uniform(0.6, 1.0, n)
    return np.stack([cx + rx * radius * np.cos(angle), cy + ry * radius * np.sin(angle)], 1)


def synthetic_set(num_images, num_categories, seed, width=640, height=480):
    from pycocotools import mask as mask_utils  # rasterizes the synthetic results only

    from kerascv_suite.data.rle import rle_encode

    rng = np.random.default_rng(seed)
    images = [{"id": i + 1, "width": width, "height": height} for i in range(num_images)]
    categories = [{"id": c + 1, "name": f"class{c + 1}"} for c in range(num_categories)]
    annotations, results = [], []

    def result(image_id, label, polygons):
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
        results.append({"image_id": image_id, "category_id": label,
                        "segmentation": {"size": [height, width],
                                         "counts": rle["counts"].decode("ascii")},
                        "score": float(rng.random())})

    for image in images:
        count = 0 if rng.random() < 0.05 else int(rng.integers(1, 7))
        for _ in range(count):
            c = int(rng.integers(1, num_categories + 1))
            rx, ry = rng.uniform(4, 125, 2)
            cx, cy = rng.uniform(rx, width - rx), rng.uniform(ry, height - ry)
            parts = [_polygon(rng, cx, cy, rx, ry)]
            if rng.random() < 0.2:
                parts.append(_polygon(rng, cx + rx, cy, rx / 2, ry / 2))
            polygons = [[float(v) for v in p.reshape(-1)] for p in parts]
            rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
            crowd = rng.random() < 0.1
            segmentation = (rle_encode(mask_utils.decode(rle), compressed=False) if crowd
                            else polygons)
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"],
                                "category_id": c, "segmentation": segmentation,
                                "area": float(mask_utils.area(rle)), "iscrowd": int(crowd)})
            for _ in range(int(rng.integers(1, 3))):
                label = c if rng.random() < 0.9 else int(rng.integers(1, num_categories + 1))
                jitter = rng.normal(0, 0.08, 2) * [rx, ry]
                result(image["id"], label,
                       [[float(v) for v in (p + jitter + rng.normal(0, 1.5, p.shape)
                                            ).reshape(-1)] for p in parts])
        for _ in range(int(rng.integers(0, 4))):
            rx, ry = rng.uniform(4, 125, 2)
            cx, cy = rng.uniform(rx, width - rx), rng.uniform(ry, height - ry)
            result(image["id"], int(rng.integers(1, num_categories + 1)),
                   [[float(v) for v in _polygon(rng, cx, cy, rx, ry).reshape(-1)]])
    return {"images": images, "annotations": annotations, "categories": categories}, results


def time_pycocotools(gt, results):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        start = time.perf_counter()
        evaluator = COCOeval(coco_gt, coco_dt, "segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
        elapsed = time.perf_counter() - start
    return elapsed, np.asarray(evaluator.stats)


def time_ours(gt, results):
    from kerascv_suite.metrics.detection import coco_evaluate

    start = time.perf_counter()
    stats = coco_evaluate(gt, results, iou_type="segm").stats
    return time.perf_counter() - start, stats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--categories", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1,
                        help="Best of N runs for each evaluator.")
    args = parser.parse_args()

    gt, results = synthetic_set(args.images, args.categories, args.seed)
    print(f"{len(gt['images'])} images 640x480, {len(gt['annotations'])} ground-truth masks "
          f"({sum(a['iscrowd'] for a in gt['annotations'])} crowd RLE, the rest polygons), "
          f"{len(results)} RLE detections, {args.categories} categories")
    ours, theirs = [], []
    for _ in range(args.repeats):
        t, ref = time_pycocotools(gt, results)
        theirs.append(t)
        t, stats = time_ours(gt, results)
        ours.append(t)
    diff = np.abs(stats - ref).max()
    assert diff <= 1e-6, f"statistics differ from pycocotools by {diff}:\n{stats}\n{ref}"
    print("stats " + " ".join(f"{v:.4f}" for v in stats) + f" (max |diff| {diff:.1e})")
    print(f"pycocotools {min(theirs):.3f} s")
    print(f"ours        {min(ours):.3f} s")
    print("load: " + subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(f"speedup {min(theirs) / min(ours):.2f}")


if __name__ == "__main__":
    main()
