"""`kcv segment`'s pipeline throughput against `model.predict` on preloaded arrays.

Both sides use the same model, the same images and the same batch size, measured side by
side (alternately, `--repeats` times) in one process. The pipeline side is
`segment_folder.run` (what `kcv segment` calls): decode and resize (or tile) in parallel
threads, batched predict, and mask / overlay / fractions written at the original size by
background threads. The reference side is `model.predict` on the same model inputs (resized
images, or their tiles with `--mode tile`) already decoded, in memory. Both rates count
images per second. The median of the per-repeat ratios (pipeline / predict) is printed
last; the issue's target is >= 0.8. The load average is printed before and after: on a
shared machine other processes take cores from both sides unequally.

    python benchmarks/segment_folder.py [--images 64] [--size 320] [--input 128] \
        [--width 0.25] [--batch-size 8] [--repeats 5] [--mode resize|tile]
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _load():
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=320, help="side of the image files")
    parser.add_argument("--input", type=int, default=128, help="model input side")
    parser.add_argument("--model", default="unet")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mode", choices=("resize", "tile"), default="resize")
    args = parser.parse_args()

    import keras

    from kerascv_suite.data import decode_image, make_shapes, write_image
    from kerascv_suite.models.registry import build
    from kerascv_suite.pipelines.folder_io import resize_image
    from kerascv_suite.models.segmentation.inference import cut_tiles
    from kerascv_suite.pipelines.segment_folder import SegmentConfig, run

    load_before = _load()
    size = (args.input, args.input)
    model = build(args.model, num_classes=4, input_shape=(*size, 3), width=args.width)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        shapes = make_shapes(args.images, args.size, seed=0)
        for i in range(args.images):
            write_image(folder / f"{i:04d}.jpg", shapes[i]["image"])
        decoded = [decode_image(p) for p in sorted(folder.iterdir())]
        if args.mode == "tile":
            arrays = np.concatenate([cut_tiles(image, size, 0.25)[0] for image in decoded])
        else:
            arrays = np.stack([resize_image(image, size) for image in decoded])
        model.predict(arrays[: args.batch_size], batch_size=args.batch_size, verbose=0)
        model.predict_on_batch(arrays[: args.batch_size])  # what the pipeline calls
        config = SegmentConfig(str(folder), args.model, out=str(Path(tmp) / "out"),
                               batch_size=args.batch_size, overwrite=True, mode=args.mode)
        run(config, model=model, log=lambda *a: None)  # warm-up: tf.data, writers, caches
        predict_rates, pipeline_rates, predict_cpu, pipeline_cpu = [], [], [], []
        for _ in range(args.repeats):
            start, cpu = time.perf_counter(), time.process_time()
            model.predict(arrays, batch_size=args.batch_size, verbose=0)
            predict_rates.append(args.images / (time.perf_counter() - start))
            predict_cpu.append((time.process_time() - cpu) / args.images)
            start, cpu = time.perf_counter(), time.process_time()
            result = run(config, model=model, log=lambda *a: None)
            pipeline_rates.append(args.images / (time.perf_counter() - start))
            pipeline_cpu.append((time.process_time() - cpu) / args.images)
            assert result.written == args.images, result
    ratios = [p / r for p, r in zip(pipeline_rates, predict_rates)]
    print(f"backend {keras.backend.backend()}, {os.cpu_count()} CPUs, load average "
          f"{load_before} before, {_load()} after")
    print(f"{args.model} width {args.width}, input {args.input}x{args.input}, mode "
          f"{args.mode} ({len(arrays)} model inputs), {args.images} images of "
          f"{args.size}x{args.size}, batch {args.batch_size}, {args.repeats} repeats")
    print("model.predict on preloaded arrays: median "
          f"{statistics.median(predict_rates):.1f} images/s "
          f"({', '.join(f'{r:.1f}' for r in predict_rates)})")
    print("kcv segment pipeline:              median "
          f"{statistics.median(pipeline_rates):.1f} images/s "
          f"({', '.join(f'{r:.1f}' for r in pipeline_rates)})")
    # CPU time (all threads) per image: what the pipeline adds to predict's own work, a
    # figure other processes' load disturbs far less than wall-clock rates.
    print(f"CPU ms per image: predict {1000 * statistics.median(predict_cpu):.1f}, "
          f"pipeline {1000 * statistics.median(pipeline_cpu):.1f}")
    print(f"per-repeat ratios: {', '.join(f'{r:.3f}' for r in ratios)}")
    print(f"ratio {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
