"""`kcv train-keypoints`: train the Stacked Hourglass on keypoints (thin: parse, run, report)."""

import click

from kerascv_suite.apps import train_cmd
from kerascv_suite.apps.options import shapes_count_option

# `kcv train`'s options, less those whose meaning or default differs for keypoints.
_SHARED = train_cmd.shared_options("model", "data", "format")
_FIXED_ON_RESUME = train_cmd.FIXED_ON_RESUME + ("sigma", "shapes_count")


def _train_keypoints(config_path, resume, **options):
    """Train a keypoint heatmap model (the Stacked Hourglass) on the shapes set's polygon
    corners: per-epoch validation PCK to MLflow, test PCK and drawn predictions in the report.

    \b
    Examples:
      kcv train-keypoints                      # hourglass on shapes, the default recipe
      kcv train-keypoints --epochs 5 --image-size 32
      kcv train-keypoints --register corners --alias champion
      kcv train-keypoints --resume             # continue the latest interrupted run
    """
    from kerascv_suite.pipelines import train_keypoints as pipeline

    result = train_cmd.run_training(pipeline, config_path, resume, options, _FIXED_ON_RESUME)
    train_cmd.echo_result(result, {"test_pck": "test PCK@0.1", "test_pck_0.05": "PCK@0.05",
                                   "test_pck_0.2": "PCK@0.2"})


train_keypoints_command = click.Command(
    "train-keypoints",
    callback=_train_keypoints,
    help=_train_keypoints.__doc__,
    params=[
        click.Option(["--model"], default=None, help="Keypoint model [hourglass]."),
        click.Option(["--data"], default=None, help="'shapes' (built in) [shapes]."),
        click.Option(["--sigma"], type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Std of the target Gaussians in heatmap cells [1, the paper's; the shapes "
                          "recipe uses 2]."),
        shapes_count_option(),
        click.Option(["--project"], default=None, help="Parent folder of run folders "
                                                      "[runs/keypoints]."),
        *_SHARED,
    ],
)

COMMANDS = (train_keypoints_command,)
