"""COCO box evaluation speed: `kerascv_suite.metrics.coco_evaluate` vs pycocotools' COCOeval.

Builds one synthetic set (default 5000 images, 10 categories, 1-6 boxes per image, about 10%
crowd boxes, some empty images; detections are jittered ground truth, some with the wrong
class, plus random false positives), then times in the same process:

    pycocotools: COCOeval(gt, results, "bbox") + evaluate() + accumulate() + summarize()
                 (its prints suppressed; building the COCO index and loadRes are NOT timed,
                 which favours pycocotools)
    ours:        coco_evaluate(gt_dict, results_list), everything from the raw dicts

asserts that the 12 statistics agree to 1e-6 and prints both times, then the ratio
`pycocotools time / our time` last.

    python benchmarks/coco_eval.py [--images 5000] [--categories 10] [--seed 0] [--repeats 1]
"""

import argparse
import contextlib
import copy
import io
import time

import numpy as np


def synthetic_set(num_images, num_categories, seed):
    rng = np.random.default_rng(seed)
    images = [{"id": i + 1, "width": 640, "height": 480} for i in range(num_images)]
    categories = [{"id": c + 1, "name": f"class{c + 1}"} for c in range(num_categories)]
    annotations, results = [], []
    for image in images:
        count = 0 if rng.random() < 0.05 else int(rng.integers(1, 7))
        for _ in range(count):
            c = int(rng.integers(1, num_categories + 1))
            w, h = rng.uniform(8, 250, 2)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"],
                                "category_id": c, "bbox": [x, y, w, h], "area": w * h,
                                "iscrowd": int(rng.random() < 0.1)})
            for _ in range(int(rng.integers(1, 3))):
                jitter = rng.normal(0, 0.1, 4) * [w, h, w, h]
                label = c if rng.random() < 0.9 else int(rng.integers(1, num_categories + 1))
                results.append({"image_id": image["id"], "category_id": label,
                                "bbox": [x + jitter[0], y + jitter[1],
                                         max(w + jitter[2], 1.0), max(h + jitter[3], 1.0)],
                                "score": float(rng.random())})
        for _ in range(int(rng.integers(0, 4))):
            w, h = rng.uniform(8, 250, 2)
            results.append({"image_id": image["id"],
                            "category_id": int(rng.integers(1, num_categories + 1)),
                            "bbox": [rng.uniform(0, 640 - w), rng.uniform(0, 480 - h), w, h],
                            "score": float(rng.random())})
    for a in annotations:
        a["bbox"] = [float(v) for v in a["bbox"]]
        a["area"] = float(a["area"])
    for r in results:
        r["bbox"] = [float(v) for v in r["bbox"]]
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
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
        elapsed = time.perf_counter() - start
    return elapsed, np.asarray(evaluator.stats)


def time_ours(gt, results):
    from kerascv_suite.metrics.detection import coco_evaluate

    start = time.perf_counter()
    stats = coco_evaluate(gt, results).stats
    return time.perf_counter() - start, stats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--categories", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1,
                        help="Best of N runs for each evaluator.")
    args = parser.parse_args()

    gt, results = synthetic_set(args.images, args.categories, args.seed)
    print(f"{len(gt['images'])} images, {len(gt['annotations'])} ground-truth boxes "
          f"({sum(a['iscrowd'] for a in gt['annotations'])} crowd), {len(results)} detections, "
          f"{args.categories} categories")
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
    print(f"speedup {min(theirs) / min(ours):.1f}")


if __name__ == "__main__":
    main()
