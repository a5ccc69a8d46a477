"""The `kcv` command: one click group; each command module attaches its commands here.

Command modules import only click (and the standard library) at module level, so
`kcv --help` never imports Keras or TensorFlow.
"""

import os

import click

from kerascv_suite import __version__
from kerascv_suite.apps import cam_cmd
from kerascv_suite.apps import data_cmd
from kerascv_suite.apps import detect_cmd
from kerascv_suite.apps import evaluate_cmd
from kerascv_suite.apps import evaluate_detections_cmd
from kerascv_suite.apps import export_cmd
from kerascv_suite.apps import models_cmd
from kerascv_suite.apps import segment_cmd
from kerascv_suite.apps import train_cmd
from kerascv_suite.apps import ui_cmd

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) drowns the command's own output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kcv")
def main():
    """kerascv-suite: classic convolutional networks on Keras 3."""


_MODULES = (
    models_cmd,
    data_cmd,
    evaluate_cmd,
    evaluate_detections_cmd,
    export_cmd,
    cam_cmd,
    ui_cmd,
    segment_cmd,
    detect_cmd,
    train_cmd,  # kcv train and its task aliases train-detector/-segmenter/-keypoints
)
for _module in _MODULES:
    for _command in _module.COMMANDS:
        main.add_command(_command)
