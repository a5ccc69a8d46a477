"""The `kcv` command: one click group; each command module attaches its commands here.

Command modules import only click (and the standard library) at module level, so
`kcv --help` never imports Keras or TensorFlow.
"""

import click

from kerascv_suite import __version__
from kerascv_suite.apps import cam_cmd
from kerascv_suite.apps import data_cmd
from kerascv_suite.apps import evaluate_cmd
from kerascv_suite.apps import export_cmd
from kerascv_suite.apps import models_cmd
from kerascv_suite.apps import train_cmd
from kerascv_suite.apps import ui_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kcv")
def main():
    """kerascv-suite: classic convolutional networks on Keras 3."""


for _command in (*models_cmd.COMMANDS, *data_cmd.COMMANDS, *ui_cmd.COMMANDS, *evaluate_cmd.COMMANDS, *train_cmd.COMMANDS, *export_cmd.COMMANDS, *cam_cmd.COMMANDS,):
    main.add_command(_command)
