"""`kcv segment`'s pipeline throughput against `model.predict` on preloaded arrays.

Both sides use the same model and batch size. The pipeline side is `segment_folder.run`
(what `kcv segment` calls): decode and resize through tf.data, batched predict, and mask /
overlay / fractions written at the original size by background threads. The reference side
is `model.predict` on the same images already decoded and resized, in memory. The ratio
(pipeline images/s / predict images/s) is printed last; the issue's target is >= 0.8.

    python benchmarks/segment_folder.py [--images 64] [--size 320] [--input 128] \
        [--width 0.25] [--batch-size 8]
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=320, help="side of the image files")
    parser.add_argument("--input", type=int, default=128, help="model input side")
    parser.add_argument("--model", default="unet")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import cv2
    import keras

    from kerascv_suite.data import decode_image, make_shapes, write_image
    from kerascv_suite.models.registry import build
    from kerascv_suite.pipelines.segment_folder import SegmentConfig, run

    model = build(args.model, num_classes=4, input_shape=(args.input, args.input, 3),
                  width=args.width)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        shapes = make_shapes(args.images, args.size, seed=0)
        for i in range(args.images):
            write_image(folder / f"{i:04d}.jpg", shapes[i]["image"])
        arrays = np.stack([cv2.resize(decode_image(p), (args.input, args.input),
                                      interpolation=cv2.INTER_AREA)
                           for p in sorted(folder.iterdir())])
        model.predict(arrays[: args.batch_size], batch_size=args.batch_size, verbose=0)
        model.predict_on_batch(arrays[: args.batch_size])  # what the pipeline calls
        predict_rates, pipeline_rates = [], []
        for repeat in range(args.repeats):
            start = time.perf_counter()
            model.predict(arrays, batch_size=args.batch_size, verbose=0)
            predict_rates.append(args.images / (time.perf_counter() - start))
            config = SegmentConfig(str(folder), args.model, out=str(Path(tmp) / "out"),
                                   batch_size=args.batch_size, overwrite=True)
            start = time.perf_counter()
            result = run(config, model=model, log=lambda *a: None)
            assert result.written == args.images, result
            pipeline_rates.append(args.images / (time.perf_counter() - start))
    predict_rate, pipeline_rate = max(predict_rates), max(pipeline_rates)
    load = os.getloadavg()
    print(f"backend {keras.backend.backend()}, {os.cpu_count()} CPUs, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{args.model} width {args.width}, input {args.input}x{args.input}, "
          f"{args.images} images of {args.size}x{args.size}, batch {args.batch_size}")
    print(f"model.predict on preloaded arrays: {predict_rate:.1f} images/s")
    print(f"kcv segment pipeline:              {pipeline_rate:.1f} images/s")
    print(f"ratio {pipeline_rate / predict_rate:.3f}")


if __name__ == "__main__":
    main()
