"""Detect objects in every image of a folder: annotated images and COCO-format detections.

The input streams through `tf.data` (`folder_io.make_dataset`): files are decoded in
parallel with our robust decoder, resized to the detector's input (a plain resize, as the
training pipeline's eval transform, or a letterbox that keeps the aspect ratio), batched and
prefetched while the detector (`kerascv_suite.models.detection.Detector`: decode + NMS in
the graph, selective-search proposals for Fast R-CNN / R-CNN) predicts. Boxes are mapped
back to the original image's pixels, and background threads write the outputs.

Outputs in `out`, per image (named by file stem, as `kcv segment`):
    annotated/<stem>.jpg     the image with boxes, class names and scores drawn (and the
                             instance masks tinted and outlined, for a model with masks)
    detections/<stem>.json   `{"file_name", "height", "width", "detections": [{"bbox"
                             [x, y, w, h], "category_id", "category", "score"}]}`
    masks/<stem>.png         instance segmentation models only (their output has `masks`):
                             the instance ids, as VOC's SegmentationObject PNGs: 0 =
                             background, `k` = the `k`-th detection of the JSON (its
                             `"instance_id"`), where instances overlap the better-scoring
                             one; an 8-bit palette PNG (VOC colours) for up to 254
                             detections (255 is VOC's void), 16-bit grayscale beyond
and, for the whole folder (every image done so far, also by earlier runs):
    detections.json   COCO format: `images` (`id`, `file_name`, `height`, `width`),
                      `categories` (`id` = class id, `name`), `annotations` (`id`,
                      `image_id`, `category_id`, `bbox` xywh, `area`, `score`)
    results.json      the bare COCO results list (`image_id`, `category_id`, `bbox`,
                      `score`), as pycocotools' `loadRes` and `kcv evaluate-detections` take
    skipped.txt       files that could not be read, and why.

Instance masks: the model's `masks` `(N, H, W)` in [0, 1] at its input size are mapped to
each original image with the boxes' mapping (stretch or letterbox; bilinear, pixel centres
aligned as `cv2.resize`) and thresholded at 0.5. Each detection then carries
`"segmentation"` (COCO compressed RLE `{"size": [height, width], "counts"}`, exact, what
pycocotools' `maskUtils.decode` and `loadRes` read), `"area"` (its pixels) and
`"instance_id"`, in the per-image JSON, `detections.json` and `results.json` (results keep
`bbox` too, as Detectron2's; `loadRes` then takes box areas for the area ranges, so a mask
AP by area drops `bbox` first, as Detectron2's evaluator does).

Files that are not images or are corrupt are skipped and reported; the run never stops on
them. An image whose two outputs exist is not redone unless `overwrite`.

Example:
    >>> result = run(DetectConfig("photos/", model="models:/shapes-ssd@champion",
    ...                           out="detected/", score_threshold=0.3))
    >>> result.written, result.num_detections, result.skipped
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from kerascv_suite.pipelines.folder_io import (atomic_write, list_files, make_dataset,
                                               output_names, predict_and_write,
                                               resize_image, skip_report, write_skipped)

# Where an instance segmentation model says what it is (`describe(model)["task"]`).
INSTANCE_TASK = "instance_segmentation"
MASK_THRESHOLD = 0.5

RESIZE_MODES = ("stretch", "letterbox")
# Ultralytics' `predict` default confidence: detectors' own thresholds (SSD 0.01) are meant
# for mAP, and would draw hundreds of boxes per image.
DEFAULT_SCORE_THRESHOLD = 0.25


@dataclasses.dataclass
class DetectConfig:
    """Options of a folder detection run.

    Attributes:
        folder: folder of images (searched recursively; every file is tried).
        model: registry name, `.keras` file or MLflow model URI of a detector, or an
            export of one (`.onnx`, `.tflite`, SavedModel folder: run with its runtime, its
            post-processing inside; a higher score threshold or fewer detections still
            apply).
        out: output folder.
        score_threshold, iou_threshold, max_detections: post-processing, passed to the
            inference call (the model is not changed); None keeps the model's
            (`describe(model)["decoder"]`, the paper's by default).
        batch_size: images per predict call.
        overwrite: redo images whose outputs exist.
        class_names: names of the detector's classes, overriding those the model carries
            (None: the model's, `describe(model)["class_names"]`, else `class_<id>`).
        resize: `"stretch"` (plain resize, the training pipeline's eval transform) or
            `"letterbox"` (aspect ratio kept, grey padding).
        max_proposals: selective-search proposals per image (Fast R-CNN, R-CNN).
        decode_threads: parallel decodes (None: one per core, at most 4).
        write_threads: background writer threads.
    """

    folder: str
    model: str
    out: str = "detections"
    score_threshold: float | None = DEFAULT_SCORE_THRESHOLD
    iou_threshold: float | None = None
    max_detections: int | None = None
    batch_size: int = 8
    overwrite: bool = False
    class_names: list | None = None
    resize: str = "stretch"
    max_proposals: int = 300
    decode_threads: int | None = None
    write_threads: int = 2

    def __post_init__(self):
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1. Received: batch_size={self.batch_size}")
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}. "
                             f"Received: resize={self.resize!r}")
        if self.score_threshold is not None and not 0 <= self.score_threshold < 1:
            raise ValueError("score_threshold must lie in [0, 1). "
                             f"Received: score_threshold={self.score_threshold}")
        if self.iou_threshold is not None and not 0 < self.iou_threshold <= 1:
            raise ValueError("iou_threshold must lie in (0, 1]. "
                             f"Received: iou_threshold={self.iou_threshold}")
        if self.max_detections is not None and int(self.max_detections) < 1:
            raise ValueError("max_detections must be >= 1. "
                             f"Received: max_detections={self.max_detections}")
        if not Path(self.folder).is_dir():
            raise FileNotFoundError(f"No such folder: {self.folder}. "
                                    f"Received: folder={self.folder!r}")


@dataclasses.dataclass
class DetectResult:
    """What a run did: images written, skipped as done, unreadable files, detections."""

    written: int
    existing: int
    skipped: list  # [(relative path, reason)]
    num_detections: int  # over every image in detections.json
    seconds: float
    out: Path

    @property
    def images_per_second(self):
        return self.written / self.seconds if self.seconds else 0.0


# === Geometry ===


def letterbox(image, size, fill=114):
    """`image` scaled to fit `(height, width)` with its aspect ratio, centred on grey."""
    height, width = size
    scale, (top, left) = letterbox_transform(image.shape[:2], size)
    new_h = max(1, min(height, round(image.shape[0] * scale)))
    new_w = max(1, min(width, round(image.shape[1] * scale)))
    canvas = np.full((height, width, image.shape[2]), fill, np.uint8)
    canvas[top:top + new_h, left:left + new_w] = resize_image(image, (new_h, new_w))
    return canvas


def letterbox_transform(image_shape, size):
    """`(scale, (top, left))`: input pixel = original pixel * scale + offset."""
    (h, w), (height, width) = image_shape, size
    scale = min(height / h, width / w)
    top = (height - min(height, round(h * scale))) // 2
    left = (width - min(width, round(w * scale))) // 2
    return scale, (top, left)


def to_original(boxes, image_shape, size, resize="stretch"):
    """Maps `(N, 4)` xyxy boxes from model-input pixels back to the original image's.

    Args:
        boxes: boxes in the `(height, width)` = `size` input.
        image_shape: `(height, width)` of the original image.
        resize: how the image was brought to `size` (see `RESIZE_MODES`).
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    h, w = image_shape
    if resize == "letterbox":
        scale, (top, left) = letterbox_transform(image_shape, size)
        boxes = (boxes - [left, top, left, top]) / scale
    else:
        boxes = boxes * [w / size[1], h / size[0], w / size[1], h / size[0]]
    return np.clip(boxes, 0, [w, h, w, h])


def input_transform(image_shape, size, resize="stretch"):
    """`((scale_x, scale_y), (left, top))`: input pixel = original pixel * scale + offset
    (continuous coordinates, pixel `i` covering `[i, i + 1)`), for either resize mode."""
    if resize == "letterbox":
        scale, (top, left) = letterbox_transform(image_shape, size)
        return (scale, scale), (left, top)
    return (size[1] / image_shape[1], size[0] / image_shape[0]), (0, 0)


def masks_to_original(masks, image_shape, size, resize="stretch",
                      threshold=MASK_THRESHOLD):
    """Maps `(N, H, W)` soft masks from model-input pixels to the original image's and
    thresholds them, with the mapping of `to_original`.

    Each mask is sampled bilinearly at the original pixels' centres (the convention of
    `cv2.resize`, which this equals in stretch mode), only over the rectangle its
    above-threshold input pixels can reach: the cost follows the instances' size, not the
    image's.

    Args:
        masks: `(N, H, W)` float in [0, 1], `(H, W)` = `size`.
        image_shape: `(height, width)` of the original image.
        size: `(H, W)` of the model input.
        resize: how the image was brought to `size` (see `RESIZE_MODES`).
        threshold: a pixel is in the instance when its value is >= this.

    Returns:
        A list of N `(top, left, mask)`: `mask` a uint8 0/1 crop of the original image
        placed at `(top, left)` (`(0, 0, (0, 0) array)` for an empty instance).
    """
    import cv2

    masks = np.asarray(masks, np.float32)
    if masks.ndim != 3 or masks.shape[1:] != tuple(size):
        raise ValueError(f"masks must be (N, {size[0]}, {size[1]}) at the model's input size. "
                         f"Received: shape={masks.shape}")
    height, width = (int(v) for v in image_shape)
    (sx, sy), (ox, oy) = input_transform(image_shape, size, resize)
    regions = []
    for mask in masks:
        x, y, w, h = cv2.boundingRect((mask >= threshold).astype(np.uint8))
        if w == 0 or h == 0:
            regions.append((0, 0, np.zeros((0, 0), np.uint8)))
            continue
        # Original pixels whose sample point has an above-threshold bilinear neighbour,
        # with a pixel of margin.
        x0 = int(np.clip(np.floor((x - 1 - ox) / sx) - 1, 0, width))
        x1 = int(np.clip(np.ceil((x + w + 1 - ox) / sx) + 1, 0, width))
        y0 = int(np.clip(np.floor((y - 1 - oy) / sy) - 1, 0, height))
        y1 = int(np.clip(np.ceil((y + h + 1 - oy) / sy) + 1, 0, height))
        if x1 <= x0 or y1 <= y0:
            regions.append((0, 0, np.zeros((0, 0), np.uint8)))
            continue
        # Original pixel (x0 + a, y0 + b) samples the input at its centre's image there.
        warp = np.float32([[sx, 0, sx * (x0 + 0.5) + ox - 0.5],
                           [0, sy, sy * (y0 + 0.5) + oy - 0.5]])
        sampled = cv2.warpAffine(mask, warp, (x1 - x0, y1 - y0),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_REPLICATE)
        regions.append((y0, x0, (sampled >= threshold).astype(np.uint8)))
    return regions


def instance_ids(regions, image_shape):
    """`(height, width)` instance ids of the mapped masks: 0 background, `k` the `k`-th
    region; where instances overlap the earlier (better-scoring) one. uint8 for up to 254
    instances (255 is VOC's void), else uint16."""
    dtype = np.uint8 if len(regions) <= 254 else np.uint16
    ids = np.zeros(tuple(int(v) for v in image_shape), dtype)
    for k in reversed(range(len(regions))):
        top, left, mask = regions[k]
        view = ids[top:top + mask.shape[0], left:left + mask.shape[1]]
        view[mask > 0] = k + 1
    return ids


def write_instance_png(path, ids):
    """Writes instance ids as a VOC-palette PNG (uint8) or a 16-bit grayscale PNG."""
    from PIL import Image

    from kerascv_suite.data import write_mask

    if ids.dtype == np.uint8:
        write_mask(path, ids)
    else:
        Image.fromarray(ids.astype(np.uint16)).save(path)


# === Files ===


def output_paths(out, name, masks=False):
    """The per-image output files; with `masks`, the instance-id PNG too."""
    out = Path(out)
    paths = {"annotated": out / "annotated" / f"{name}.jpg",
             "detections": out / "detections" / f"{name}.json"}
    if masks:
        paths["masks"] = out / "masks" / f"{name}.png"
    return paths


def model_class_names(model, num_classes, class_names=None):
    """The detector's class names: `class_names` if given (an override, checked against the
    model), else those the model carries (`describe(model)["class_names"]`), else
    `class_0..class_{C-1}`."""
    from kerascv_suite.models.metadata import describe

    return checked_class_names(describe(model)["class_names"], num_classes, class_names)


def checked_class_names(carried, num_classes, class_names=None):
    """`class_names` if given (checked against `num_classes`), else `carried` (the names a
    model or export carries, checked), else `class_0..class_{C-1}`."""
    if class_names is not None:
        names = [str(n).strip() for n in class_names]
        if len(names) != num_classes:
            raise ValueError(f"{len(names)} class names for a detector of {num_classes} "
                             f"classes. Received: class_names={list(class_names)!r}")
        return names
    if carried is not None:
        if len(carried) != num_classes:
            raise ValueError(f"The model carries {len(carried)} class names for its "
                             f"{num_classes} classes; pass the right ones (--class-names). "
                             f"Received: model class_names={carried!r}")
        return list(carried)
    return [f"class_{c}" for c in range(num_classes)]


def write_outputs(paths, file_name, original, detections, class_names, size, resize):
    """Maps one image's padded detections (and `masks`, if any) to the original image,
    draws and writes them; returns the per-image record."""
    from kerascv_suite.data import write_image
    from kerascv_suite.data.rle import rle_encode_region
    from kerascv_suite.training.detection_report import draw_detections
    from kerascv_suite.visualization.boxes import class_colour
    from kerascv_suite.visualization.masks import overlay_instances

    count = int(detections["num_detections"])
    boxes = to_original(detections["boxes"][:count], original.shape[:2], size, resize)
    classes = np.asarray(detections["classes"][:count], np.int64)
    scores = np.asarray(detections["scores"][:count], np.float64)
    records = [{"bbox": [round(float(x1), 2), round(float(y1), 2), round(float(x2 - x1), 2),
                         round(float(y2 - y1), 2)],
                "category_id": int(c), "category": class_names[int(c)],
                "score": round(float(s), 5)}
               for (x1, y1, x2, y2), c, s in zip(boxes, classes, scores)]
    record = {"file_name": file_name, "height": int(original.shape[0]),
              "width": int(original.shape[1]), "detections": records}
    drawn = original
    if "masks" in detections:
        regions = masks_to_original(detections["masks"][:count], original.shape[:2], size,
                                    resize)
        for k, ((top, left, mask), det) in enumerate(zip(regions, records)):
            det["segmentation"] = rle_encode_region(mask, top, left, original.shape[:2])
            det["area"] = int(mask.sum())
            det["instance_id"] = k + 1
        if "masks" in paths:
            ids = instance_ids(regions, original.shape[:2])
            atomic_write(paths["masks"], lambda tmp: write_instance_png(tmp, ids))
        drawn = overlay_instances(original, [m for _, _, m in regions],
                                  [class_colour(int(c)) for c in classes],
                                  offsets=[(t, lf) for t, lf, _ in regions])
    atomic_write(paths["annotated"], lambda tmp: write_image(
        tmp, draw_detections(drawn, boxes, scores, classes, class_names, score_threshold=0.0,
                             scale=1)))
    atomic_write(paths["detections"], lambda tmp: tmp.write_text(json.dumps(record),
                                                                 encoding="utf-8"))
    return record


def write_summary(out, files, names, root, class_names, skipped):
    """`detections.json` (COCO), `results.json` (COCO results list) and `skipped.txt` over
    every image done so far; returns the number of detections."""
    out = Path(out)
    images, annotations = [], []
    for image_id, (file, name) in enumerate(zip(files, names), start=1):
        path = output_paths(out, name)["detections"]
        if not path.is_file():
            continue
        record = json.loads(path.read_text(encoding="utf-8"))
        images.append({"id": image_id, "file_name": str(Path(file).relative_to(root)),
                       "height": record["height"], "width": record["width"]})
        for det in record["detections"]:
            x, y, w, h = det["bbox"]
            annotation = {"id": len(annotations) + 1, "image_id": image_id,
                          "category_id": det["category_id"], "bbox": det["bbox"],
                          "area": round(w * h, 2), "score": det["score"]}
            if "segmentation" in det:  # the mask's area, as COCO's instance annotations
                annotation.update(segmentation=det["segmentation"], area=det["area"])
            annotations.append(annotation)
    categories = [{"id": c, "name": n} for c, n in enumerate(class_names)]
    atomic_write(out / "detections.json", lambda tmp: tmp.write_text(json.dumps(
        {"images": images, "categories": categories, "annotations": annotations}),
        encoding="utf-8"))
    results = [{k: a[k] for k in ("image_id", "category_id", "bbox", "score", "segmentation")
                if k in a} for a in annotations]
    atomic_write(out / "results.json",
                 lambda tmp: tmp.write_text(json.dumps(results), encoding="utf-8"))
    write_skipped(out, skipped)
    return len(annotations)


# === Pipeline ===


def predicts_masks(detector) -> bool:
    """Whether a `Detector` or `ExportedDetector` is of an instance segmentation model (its
    outputs have `masks`), from its metadata's task or, for a functional model, its
    outputs."""
    from kerascv_suite.export import ExportedDetector
    from kerascv_suite.models.metadata import describe

    if isinstance(detector, ExportedDetector):
        return (detector.metadata or {}).get("task") == INSTANCE_TASK
    if describe(detector.model)["task"] == INSTANCE_TASK:
        return True
    try:
        output = detector.model.output
    except (AttributeError, ValueError):  # a subclassed model: no symbolic output
        return False
    return isinstance(output, dict) and "masks" in output


def mask_predictor(detector):
    """`predict(images)` -> per image, the contract's arrays plus `masks` `(n, H, W)`.

    `Detector.predict` returns the four box outputs only; this keeps the model's `masks`
    (in the model's own call, with the same inputs). Each image's masks are cut to its `n`
    detections and copied, so the writers' queue holds those, not whole `(batch, N, H, W)`
    float batches.
    """
    from kerascv_suite.models.detection.inference import CONTRACT_KEYS, Detector

    if not isinstance(detector, Detector):
        return detector.predict

    def predict(images):
        out = detector.model.predict_on_batch(detector.inputs_for(images))
        if "masks" not in out:
            raise ValueError(f"{detector.model.name!r} says it is an instance segmentation "
                             "model, but its outputs have no 'masks' (outputs: "
                             f"{sorted(out)}); pass a Mask R-CNN model")
        arrays = {key: np.asarray(out[key]) for key in (*CONTRACT_KEYS, "masks")}
        counts = arrays["num_detections"].reshape(-1).astype(int)
        return [{**{key: arrays[key][i] for key in CONTRACT_KEYS},
                 "masks": arrays["masks"][i, :counts[i]].copy()} for i in range(len(counts))]

    return predict


def run(config: DetectConfig, *, model=None, log=print) -> DetectResult:
    """Detects objects in `config.folder`, writing into `config.out`.

    Args:
        config: a `DetectConfig`.
        model: an already loaded detector (else `config.model` is resolved).
        log: progress messages.

    Returns:
        A `DetectResult`.

    Raises:
        ValueError: a model that is not a detector, or class names that do not fit it.
    """
    import kerascv_suite.layers  # noqa: F401  (custom layers of saved models)
    from kerascv_suite.export import ExportedDetector, is_export
    from kerascv_suite.models.detection.inference import Detector, is_detector
    from kerascv_suite.models.resolve import get_model

    start = time.monotonic()
    if model is None and is_export(config.model):
        # An exported detector (ONNX, TFLite, SavedModel), run with its runtime.
        detector = ExportedDetector(config.model, score_threshold=config.score_threshold,
                                    iou_threshold=config.iou_threshold,
                                    max_detections=config.max_detections,
                                    max_proposals=config.max_proposals)
        class_names = checked_class_names(detector.class_names, detector.num_classes,
                                          config.class_names)
    else:
        model = model if model is not None else get_model(config.model)
        if not is_detector(model):
            raise ValueError(f"{config.model} is not a detector (expected one of our YOLO "
                             f"v1, SSD, R-CNN, Fast, Faster or Mask R-CNN models). Received: "
                             f"model={config.model!r}")
        detector = Detector(model, score_threshold=config.score_threshold,
                            iou_threshold=config.iou_threshold,
                            max_detections=config.max_detections,
                            max_proposals=config.max_proposals)
        class_names = model_class_names(model, detector.num_classes, config.class_names)
    size = detector.input_size
    with_masks = predicts_masks(detector)
    root, out = Path(config.folder), Path(config.out)
    files = list_files(root)
    names = output_names(files, root)
    todo = [i for i, name in enumerate(names) if config.overwrite or not all(
        p.is_file() for p in output_paths(out, name, with_masks).values())]
    existing = len(files) - len(todo)
    if existing:
        log(f"{existing} images already done in {out} (skipped; --overwrite redoes them).")
    originals, failures = {}, {}
    paths = [str(files[i]) for i in todo]
    written = 0
    if paths:
        prepare = letterbox if config.resize == "letterbox" else resize_image
        ds = make_dataset(paths, size, 3, config.batch_size, originals, failures,
                          config.decode_threads, prepare=prepare)

        def write(index, detections):
            file = files[todo[index]]
            write_outputs(output_paths(out, names[todo[index]], with_masks),
                          str(file.relative_to(root)), originals.pop(index), detections,
                          class_names, size, config.resize)

        predict = mask_predictor(detector) if with_masks else detector.predict
        written = predict_and_write(ds, config.batch_size, predict, write,
                                    config.write_threads)
    skipped = sorted((str(Path(paths[i]).relative_to(root)), reason)
                     for i, reason in failures.items())
    out.mkdir(parents=True, exist_ok=True)
    total = write_summary(out, files, names, root, class_names, skipped)
    seconds = time.monotonic() - start
    log(f"Detected {total} objects; wrote {written} images in {seconds:.1f} s into "
        f"{out}{skip_report(skipped)}.")
    return DetectResult(written, existing, skipped, total, seconds, out)
