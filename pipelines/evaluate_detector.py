"""Evaluate a detector on a labelled split: the 12 COCO statistics, PASCAL VOC mAP@0.5
(2007 11-point and 2010+ all-point) and precision-recall curves per class; for Mask R-CNN
also the 12 COCO mask statistics (`iou_type="segm"`, the instance segmentation task's
evaluation path).

Images are resized to the detector's input (a plain resize, as the training pipeline's eval
transform); its boxes are mapped back to each image's own pixels and scored there against
the ground truth, so COCO's small / medium / large areas refer to the original images.
Crowd boxes (COCO `iscrowd`) and VOC `difficult` boxes are ignored as by pycocotools and
the VOC devkit.

Example:
    >>> from kerascv_suite.pipelines.evaluate_detector import DetectorEvalConfig, run
    >>> result = run(DetectorEvalConfig("models:/shapes-ssd@champion", out="eval/"))
    >>> result.as_dict()["AP50"]
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np

DATA_FORMATS = ("voc", "coco", "yolo")
# `kcv train-detector`'s shapes set: 800 training images, a fifth of that for val and test.
SHAPES_COUNT = 160


@dataclasses.dataclass
class DetectorEvalConfig:
    """What to evaluate on which data.

    Attributes:
        model: registry name, `.keras` file or MLflow URI of a detector.
        data: `"shapes"` (built in, generated at the detector's input size) or a dataset
            folder / COCO JSON.
        format: `"voc"`, `"coco"` or `"yolo"` (None: detected from the folder).
        split: the split to evaluate.
        batch_size: images per predict call.
        out: folder for `report.json` and the PR plots (None: nothing written).
        score_threshold, iou_threshold, max_detections: post-processing; None keeps the
            model's (the papers' low thresholds, as mAP needs).
        shapes_count, seed: size and seed of the built-in shapes split (the seed of
            `kcv train-detector`'s shapes data, so its test split is the one trained for).
        max_proposals: selective-search proposals per image (Fast R-CNN, R-CNN); None
            keeps the detector's (what it was trained with).
        unknown_class: `"error"` (an annotated class outside the class list stops, naming
            the file and entry) or `"skip"` (the object is skipped and counted).
        mask_threshold: Mask R-CNN: a pasted mask probability at or above it is the
            instance.
    """

    model: str
    data: str = "shapes"
    format: str | None = None
    split: str = "test"
    batch_size: int = 8
    out: str | None = None
    score_threshold: float | None = None
    iou_threshold: float | None = None
    max_detections: int | None = None
    shapes_count: int = SHAPES_COUNT
    seed: int = 0
    unknown_class: str = "error"
    max_proposals: int | None = None
    mask_threshold: float = 0.5

    def __post_init__(self):
        if self.format is not None and self.format not in DATA_FORMATS:
            raise ValueError(f"format must be one of {DATA_FORMATS}. "
                             f"Received: format={self.format!r}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be positive. Received: {self.batch_size}")
        if self.data == "shapes" and self.split not in ("train", "val", "test"):
            raise ValueError("The shapes data has splits train, val and test. "
                             f"Received: split={self.split!r}")


@dataclasses.dataclass
class DetectorEvalResult:
    """The scores, plus where they were written."""

    config: DetectorEvalConfig
    class_names: list
    num_images: int
    coco: object  # kerascv_suite.metrics.detection.COCOResult
    voc07: dict  # voc_evaluate(use_07_metric=True)
    voc: dict  # voc_evaluate(use_07_metric=False)
    report_path: Path | None = None
    plot_paths: list = dataclasses.field(default_factory=list)
    segm: object = None  # the COCO mask result (Mask R-CNN), else None

    def as_dict(self):
        """The 12 COCO statistics first, named and ordered as pycocotools prints them,
        then VOC mAP@0.5 and the per-class numbers (None where a class has no ground
        truth); for Mask R-CNN `mask`: the 12 COCO mask statistics."""
        coco_k = self.coco.precision  # (T, R, K, A, M)
        ids = list(self.coco.category_ids)

        def number(value):
            return None if value is None or value != value or value < 0 else float(value)

        per_class = {}
        for k, name in enumerate(self.class_names):
            ap = None
            if k in ids:
                p = coco_k[:, :, ids.index(k), 0, -1]
                ap = float(p[p > -1].mean()) if np.any(p > -1) else None
            per_class[name] = {"AP": ap,
                               "VOC07_AP50": number(self.voc07["ap"][k]),
                               "VOC_AP50": number(self.voc["ap"][k])}
        masks = ({} if self.segm is None else
                 {"mask": {k: float(v) for k, v in self.segm.as_dict().items()}})
        return {**{k: float(v) for k, v in self.coco.as_dict().items()}, **masks,
                "VOC07_mAP50": number(self.voc07["mAP"]),
                "VOC_mAP50": number(self.voc["mAP"]),
                "model": self.config.model, "data": self.config.data,
                "split": self.config.split, "images": self.num_images,
                "class_names": list(self.class_names), "per_class": per_class,
                "pr_plots": [str(p) for p in self.plot_paths]}


def load_split(config, size):
    """The dataset to evaluate (a `kerascv_suite.data.Dataset`)."""
    from kerascv_suite.data import list_splits, make_shapes, read_dataset
    from kerascv_suite.data.splits import check_folder, detect_format
    from kerascv_suite.tasks.detection import reader_options

    if config.data == "shapes":
        return make_shapes(config.shapes_count, size, seed=config.seed, split=config.split)
    root = check_folder(config.data, "shapes")
    fmt = config.format or detect_format(root, "detection")
    splits = [s for s in list_splits(root, fmt) if s is not None]
    if splits and config.split not in splits:
        raise ValueError(f"{root} has no split {config.split!r}; it has {splits}. "
                         f"Received: split={config.split!r}")
    return read_dataset(root, fmt, config.split if splits else None,
                        **reader_options(fmt, "detection", config))


def check_classes(detector_classes, model_names, dataset, data):
    """A class-count mismatch is an error naming both sides (never a silent zero mAP)."""
    names = list(dataset.class_names)
    if detector_classes != len(names):
        raise ValueError(f"The detector predicts {detector_classes} classes"
                         + (f" {list(model_names)}" if model_names else "")
                         + f" but {data!r} has {len(names)}: {names}. Evaluate on data with "
                         "the classes the detector was trained on.")


def run(config: DetectorEvalConfig, *, model=None, log=print) -> DetectorEvalResult:
    """Loads the detector and the data, scores it with the detection task's one evaluation
    path (`kerascv_suite.tasks.detection.evaluate_detector`, the code that scores the test
    split at the end of training), and optionally writes the report.

    Raises:
        ValueError: a model that is not a detector, a class-count mismatch between detector
            and data, an unknown split.
        FileNotFoundError: a data folder or model file that does not exist.
    """
    from kerascv_suite.data.dataset import log_skipped
    from kerascv_suite.models.detection.inference import Detector, is_detector
    from kerascv_suite.models.detection.mask_rcnn import InstanceDetector, \
        is_instance_segmenter
    from kerascv_suite.models.metadata import describe
    from kerascv_suite.models.resolve import get_model
    from kerascv_suite.tasks.detection import evaluate_detector
    from kerascv_suite.tasks.instance_segmentation import evaluate_instances

    model = model if model is not None else get_model(config.model)
    if not is_detector(model):
        raise ValueError(f"{config.model} is not a detector. Received: model={config.model!r}")
    # Proposals per image: the option, else what the detector was trained with.
    proposals = config.max_proposals or (describe(model)["decoder"] or {}).get(
        "max_proposals", 300)
    settings = {"score_threshold": config.score_threshold,
                "iou_threshold": config.iou_threshold, "max_detections": config.max_detections}
    instances = is_instance_segmenter(model)
    detector = (InstanceDetector(model, **settings) if instances
                else Detector(model, **settings, max_proposals=proposals))
    dataset = load_split(config, detector.input_size)
    check_classes(detector.num_classes, describe(model).get("class_names"), dataset,
                  config.data)
    if instances:
        scores = evaluate_instances(detector, dataset, list(dataset.class_names),
                                    config.batch_size, mask_threshold=config.mask_threshold)
    else:
        scores = evaluate_detector(detector, dataset, list(dataset.class_names),
                                   config.batch_size)
    log_skipped(dataset, log, split=config.split)
    result = DetectorEvalResult(config, list(dataset.class_names), len(scores.predictions.boxes),
                                scores.coco, scores.voc07, scores.voc,
                                segm=getattr(scores, "segm", None))
    if config.out:
        write_outputs(result, Path(config.out))
    return result


def plot_class_pr(coco_result, k, name, path):
    """One class's precision-recall curves at IoU 0.50, 0.75 and each other COCO
    threshold (all areas, 100 detections; COCOeval's interpolated precision)."""
    from kerascv_suite.metrics.detection import IOU_THRESHOLDS, RECALL_THRESHOLDS
    from kerascv_suite.visualization.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    column = list(coco_result.category_ids).index(k)
    for t, iou in enumerate(IOU_THRESHOLDS):
        precision = coco_result.precision[t, :, column, 0, -1]
        strong = t in (0, 5)  # 0.50, 0.75
        ax.plot(RECALL_THRESHOLDS, np.clip(precision, 0, 1), alpha=1.0 if strong else 0.25,
                linewidth=2 if strong else 1,
                label=f"IoU {iou:.2f} AP {precision.mean():.3f}" if strong else None)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"{name}: precision-recall (faint: IoU .55-.95)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_outputs(result, out):
    """`report.json`, `pr_curves.png` (every class at IoU 0.5) and `pr_<class>.png`."""
    from kerascv_suite.visualization import plot_pr_curves

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "pr_curves.png"]
    plot_pr_curves(result.coco, result.class_names, paths[0],
                   title=f"PR curves ({result.config.split}, IoU 0.50)")
    for k, name in enumerate(result.class_names):
        p = result.coco.precision[:, :, list(result.coco.category_ids).index(k), 0, -1]
        if np.all(p < 0):
            continue  # no ground truth of this class: no curve
        path = out / f"pr_{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
        plot_class_pr(result.coco, k, name, path)
        paths.append(path)
    result.plot_paths = paths
    result.report_path = out / "report.json"
    result.report_path.write_text(json.dumps(result.as_dict(), indent=2), encoding="utf-8")
    return result
