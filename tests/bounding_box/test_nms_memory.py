"""`batched_nms` memory at the Faster R-CNN paper's RPN size: 4 images x 12,000 boxes.

A dense `(4, 12000, 12000)` IoU matrix and its masks grew the process by 18.8 GB; blockwise
suppression needs O(boxes x block). Measured in a fresh TensorFlow process: the growth of
the peak resident set over the resident set just before the call. The peak is
/proc/self/status VmHWM, reset just before the call (`ru_maxrss` would not do: Linux carries
it over `exec` from the forking process, here pytest, which may hold GBs on its own).
"""

import json
import os
import subprocess
import sys

SCRIPT = r"""
import json, os
import numpy as np
from keras import ops
from kerascv_suite.bounding_box import batched_nms

def status_mb(field):
    line = next(l for l in open("/proc/self/status") if l.startswith(field + ":"))
    return int(line.split()[1]) / 1024

rng = np.random.default_rng(0)
xy = rng.uniform(0, 1000, (4, 12000, 2))
boxes = np.concatenate([xy, xy + rng.uniform(10, 300, (4, 12000, 2))], -1).astype("float32")
scores = rng.uniform(size=(4, 12000)).astype("float32")
# Warm up TensorFlow's kernels and thread pools on a small case (two blocks).
ops.convert_to_numpy(batched_nms(boxes[:, :600], scores[:, :600], iou_threshold=0.7,
                                 max_detections=300)["indices"])
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets VmHWM to the current resident set
before = status_mb("VmRSS")
out = batched_nms(boxes, scores, iou_threshold=0.7, max_detections=2000)
counts = ops.convert_to_numpy(out["num_detections"]).tolist()
print(json.dumps({"growth_mb": status_mb("VmHWM") - before, "counts": counts}))
"""


def test_rpn_sized_nms_grows_memory_by_under_1_5_gb():
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["counts"] == [2000] * 4  # Ren et al. 2015: 2,000 proposals kept per image
    assert report["growth_mb"] < 1536, report
