"""`kcv train-detector`: train an object detector (thin: parse options, call the pipeline)."""

import click

from kerascv_suite.apps import train_cmd
from kerascv_suite.apps.options import shapes_count_option
from kerascv_suite.pipelines.train_detector import FORMATS

# `kcv train`'s options, less those whose meaning or default differs for detection
# (detectors train whole: no freezing phases).
_SHARED = train_cmd.shared_options("model", "data", "format", "freeze", "head_epochs")
_FIXED_ON_RESUME = train_cmd.FIXED_ON_RESUME + ("shapes_count", "max_boxes", "max_proposals")


def _train_detector(config_path, resume, **options):
    """Train an object detector: per-epoch validation AP (COCO AP, AP50, AP75) to MLflow;
    test-split COCO and VOC metrics, PR curves, a confusion matrix and drawn detections in
    the report; the logged model is a detector (decode + NMS inside).

    \b
    Examples:
      kcv train-detector --config pipelines/recipes/faster_rcnn_small_shapes.yaml
      kcv train-detector --model yolo_v1_tiny --image-size 128 --epochs 30
      kcv train-detector --model ssd300 --data ./VOC2007 --format voc --register voc-ssd
      kcv train-detector --resume          # continue the latest interrupted run
    """
    from kerascv_suite.pipelines import train_detector as pipeline

    result = train_cmd.run_training(pipeline, config_path, resume, options, _FIXED_ON_RESUME)
    train_cmd.echo_result(result, {"test_ap": "test AP", "test_ap50": "AP50",
                                   "test_voc07_map": "VOC07 mAP"})


_UNIT = click.FloatRange(min=0, max=1)

train_detector_command = click.Command(
    "train-detector",
    callback=_train_detector,
    help=_train_detector.__doc__,
    params=[
        click.Option(["--model"], default=None,
                     help="Detector: faster_rcnn, faster_rcnn_small, fast_rcnn, rcnn, "
                          "yolo_v1, yolo_v1_tiny, ssd300, ssd300_tiny... [faster_rcnn]."),
        click.Option(["--data"], default=None,
                     help="'shapes' (built in) or a dataset folder [shapes]."),
        click.Option(["--format", "format"], type=click.Choice(FORMATS), default=None,
                     help="Format of a dataset folder [detected]."),
        click.Option(["--score-threshold"], type=_UNIT, default=None,
                     help="Minimum detection score for validation, test and the logged "
                          "detector [the model's]."),
        click.Option(["--iou-threshold"], type=_UNIT, default=None,
                     help="NMS IoU threshold [the model's]."),
        click.Option(["--max-detections"], type=click.IntRange(min=1), default=None,
                     help="Detections kept per image [the model's]."),
        click.Option(["--max-proposals"], type=click.IntRange(min=1), default=None,
                     help="Selective-search proposals per image (fast_rcnn, rcnn) [300]."),
        click.Option(["--max-boxes"], type=click.IntRange(min=1), default=None,
                     help="Ground-truth boxes kept per image [20]."),
        click.Option(["--val-every"], type=click.IntRange(min=1), default=None,
                     help="Validation AP every N epochs (and after the last) [1]."),
        shapes_count_option(),
        click.Option(["--project"], default=None,
                     help="Parent folder of run folders [runs/detect]."),
        *_SHARED,
    ],
)

COMMANDS = (train_detector_command,)
