"""A checkpoint compiled with our losses and metrics loads in a fresh process (as `kcv
segment --model best.keras` and `kcv evaluate` do), with nothing else imported first."""

import subprocess
import sys

from kerascv_suite import models
from kerascv_suite.losses import SegmentationLoss
from kerascv_suite.metrics.segmentation import ConfusionReport


def test_a_segmenter_checkpoint_with_its_metric_and_loss_loads_in_a_fresh_process(tmp_path):
    spec = models.get_spec("unet_shapes")
    model = spec.build(**spec.test_overrides)
    model.compile(loss=SegmentationLoss(), metrics=[ConfusionReport(3)])
    path = tmp_path / "best.keras"
    model.save(path)
    code = ("from kerascv_suite.models.resolve import load_keras_file\n"
            f"print(load_keras_file({str(path)!r}).count_params())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == str(model.count_params())
