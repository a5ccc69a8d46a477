"""Input-pipeline throughput: a plain Python loop vs `DataLoader` worker processes.

Writes a synthetic detection+segmentation set (224x224 JPEGs, PNG masks, boxes) to a temp
dir, so JPEG decoding is part of the work as in training, then measures images/s of
    (a) a one-thread Python loop: decode + the "detection" augmentation preset, and
    (b) `DataLoader(...).as_tf_dataset()` iterated to the end, default worker count,
both warmed up and interleaved, best of `--repeats` runs each. The loop runs once with
cv2 on one thread and once with cv2's default threads; the ratio printed last is
`pipeline / faster loop`. CPU-ms per image (all processes, from /proc) are printed too:
unlike images/s they hardly move when other programs load the machine.

    python benchmarks/input_pipeline.py [--images 512] [--batch-size 32] [--workers N]
"""

import argparse
import os
import sys
import tempfile
import time

import cv2
import numpy as np

from kerascv_suite.data.augment import build_augmenter, sample_seed
from kerascv_suite.data.loader import DataLoader

SIZE = 224


class JpegDetectionSet:
    """`root/{i}.jpg` + `root/{i}.png` (class ids) + boxes/classes held in memory."""

    def __init__(self, root, boxes, classes):
        self.root = root
        self.boxes = boxes
        self.classes = classes

    def __len__(self):
        return len(self.boxes)

    def __getitem__(self, i):
        image = cv2.imread(os.path.join(self.root, f"{i}.jpg"), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"{self.root}/{i}.jpg")
        mask = cv2.imread(os.path.join(self.root, f"{i}.png"), cv2.IMREAD_UNCHANGED)
        return {
            "image": cv2.cvtColor(image, cv2.COLOR_BGR2RGB),
            "mask": mask,
            "boxes": self.boxes[i],
            "classes": self.classes[i],
        }


def write_dataset(root, num_images, seed=0):
    rng = np.random.default_rng(seed)
    all_boxes, all_classes = [], []
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for i in range(num_images):
        base = rng.integers(0, 256, 3)
        image = (base + 40 * np.sin(xx / rng.uniform(5, 30))[..., None]).clip(0, 255)
        image = (image + rng.normal(0, 10, (SIZE, SIZE, 3))).clip(0, 255).astype(np.uint8)
        mask = np.zeros((SIZE, SIZE), np.uint8)
        boxes, classes = [], []
        for _ in range(rng.integers(1, 6)):
            x0, y0 = rng.integers(0, SIZE - 40, 2)
            x1, y1 = x0 + rng.integers(20, 120), y0 + rng.integers(20, 120)
            x1, y1 = min(x1, SIZE), min(y1, SIZE)
            cls = int(rng.integers(0, 20))
            image[y0:y1, x0:x1] = rng.integers(0, 256, 3)
            mask[y0:y1, x0:x1] = cls + 1
            boxes.append([x0, y0, x1, y1])
            classes.append(cls)
        cv2.imwrite(os.path.join(root, f"{i}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        cv2.imwrite(os.path.join(root, f"{i}.png"), mask)
        all_boxes.append(np.asarray(boxes, np.float32))
        all_classes.append(np.asarray(classes, np.int32))
    return JpegDetectionSet(root, all_boxes, all_classes)


def cpu_seconds(pid):
    """User + system CPU time of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(run, pids):
    """Runs `run()` (returns an image count); returns (images/s, CPU ms per image)."""
    cpu = sum(cpu_seconds(p) for p in pids)
    start = time.perf_counter()
    count = run()
    wall = time.perf_counter() - start
    return count / wall, (sum(cpu_seconds(p) for p in pids) - cpu) / count * 1000


def loop(dataset, augment, epoch, cv2_threads):
    previous = cv2.getNumThreads()
    cv2.setNumThreads(cv2_threads)
    try:
        for i in range(len(dataset)):
            augment(dataset[i], seed=sample_seed(0, epoch, i))
    finally:
        cv2.setNumThreads(previous)
    return len(dataset)


def pipeline(tf_dataset):
    return sum(int(batch["images"].shape[0]) for batch in tf_dataset)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # the parent feeds tf.data, as in training

    print(f"load average: {os.getloadavg()}, cores: {len(os.sched_getaffinity(0))}")
    with tempfile.TemporaryDirectory() as root:
        dataset = write_dataset(root, args.images)
        augment = build_augmenter("detection", image_size=SIZE)
        loader = DataLoader(dataset, args.batch_size, augment=augment, num_workers=args.workers,
                            keys=("images", "boxes", "classes", "masks"), max_boxes=16)
        tf_dataset = loader.as_tf_dataset()
        with loader:
            pids = [os.getpid()] + loader.start_workers()
            default_threads = cv2.getNumThreads()
            # Warm-up: worker start-up, TF graph building, page cache, albumentations import.
            loop(dataset, augment, 0, 1)
            pipeline(tf_dataset)
            runs = {"loop (cv2 1 thread)": [], f"loop (cv2 {default_threads} threads)": [],
                    "pipeline": []}
            for epoch in range(1, args.repeats + 1):
                runs["loop (cv2 1 thread)"].append(
                    measure(lambda: loop(dataset, augment, epoch, 1), pids[:1]))
                runs[f"loop (cv2 {default_threads} threads)"].append(
                    measure(lambda: loop(dataset, augment, epoch, default_threads), pids[:1]))
                runs["pipeline"].append(measure(lambda: pipeline(tf_dataset), pids))
        print(f"tensorflow {tf.__version__}, workers {loader.num_workers}, batch "
              f"{args.batch_size}, images {args.images}, skipped {loader.stats()['skipped']}")
        best = {}
        for name, results in runs.items():
            best[name] = max(rate for rate, _ in results)
            detail = ", ".join(f"{rate:.1f}" for rate, _ in results)
            cpu = min(ms for _, ms in results)
            print(f"{name:22s} {best[name]:7.1f} images/s  (runs: {detail}; "
                  f"{cpu:.2f} CPU-ms/image, all processes)")
        print(f"load average after: {os.getloadavg()}")
        # Against the faster of the two loops, so the ratio never flatters the pipeline.
        loop_best = max(rate for name, rate in best.items() if name.startswith("loop"))
        print(f"ratio {best['pipeline'] / loop_best:.2f}")


if __name__ == "__main__":
    sys.exit(main())
