"""Input-pipeline throughput: a plain Python loop vs `DataLoader` worker processes.

Writes a synthetic detection+segmentation set (224x224 JPEGs, PNG masks, boxes) to a temp
dir, so JPEG decoding is part of the work as in training, then measures images/s of
    (a) a one-thread Python loop: decode + the "detection" augmentation preset, and
    (b) `DataLoader(...).as_tf_dataset()` iterated to the end, default worker count,
both warmed up, and prints `ratio <pipeline / loop>` last.

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


def loop_rate(dataset, augment, epoch):
    start = time.perf_counter()
    for i in range(len(dataset)):
        augment(dataset[i], seed=sample_seed(0, epoch, i))
    return len(dataset) / (time.perf_counter() - start)


def pipeline_rate(tf_dataset):
    start = time.perf_counter()
    count = sum(int(batch["images"].shape[0]) for batch in tf_dataset)
    return count / (time.perf_counter() - start)


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
            # Warm-up: worker start-up, TF graph building, page cache, albumentations import.
            loop_rate(dataset, augment, epoch=0)
            pipeline_rate(tf_dataset)
            loops, pipes = [], []
            for repeat in range(args.repeats):
                loops.append(loop_rate(dataset, augment, epoch=repeat + 1))
                pipes.append(pipeline_rate(tf_dataset))
            workers = loader.num_workers
        print(f"tensorflow {tf.__version__}, workers {workers}, batch {args.batch_size}, "
              f"images {args.images}, skipped {loader.stats()['skipped']}")
        loop, pipe = max(loops), max(pipes)
        print(f"loop     {loop:8.1f} images/s  (runs: {', '.join(f'{r:.1f}' for r in loops)})")
        print(f"pipeline {pipe:8.1f} images/s  (runs: {', '.join(f'{r:.1f}' for r in pipes)})")
        print(f"load average after: {os.getloadavg()}")
        print(f"ratio {pipe / loop:.2f}")


if __name__ == "__main__":
    sys.exit(main())
