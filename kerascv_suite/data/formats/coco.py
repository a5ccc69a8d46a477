"""COCO JSON: `annotations/instances_<split>.json` with images in `<split>/`.

Reference: Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014.

* Category ids (1..90 with gaps in COCO) map to contiguous class ids by sorted id.
* Boxes: COCO `[x, y, width, height]` -> `xyxy`.
* Segmentations: polygons, uncompressed RLE (`iscrowd=1`) and compressed RLE are
  decoded by `kerascv_suite.data.rle` (no pycocotools). With masks on (`masks=`),
  samples get `"instance_masks"` `(num_boxes, height, width)` uint8 0/1 (aligned with
  the boxes) and a semantic `"mask"` (0 background, `c + 1` for class c, later
  annotations paint over earlier ones). Each segmentation is checked when the file is
  read (RLE size equal to the image's, counts adding up, polygons of numbers): a
  malformed one raises `AnnotationError` naming the annotation. `masks=False` neither
  keeps nor decodes them (plain detection pays nothing for masks).
* Crowd annotations (`iscrowd=1`), as pycocotools treats them: dropped from the boxes
  (training targets) by default, their pixels set to 255 (ignore) in the semantic mask;
  `include_crowd=True` keeps them with an `"iscrowd"` flag per box (and their instance
  mask), for evaluation.
* Keypoints: `(num_boxes, K, 3)` with K the longest category keypoint list.
"""

import json
import os
from pathlib import Path

import numpy as np

from kerascv_suite.data.dataset import RecordDataset, clean_boxes
from kerascv_suite.data.errors import AnnotationError, DataError
from kerascv_suite.data.formats.common import (StemAllocator, check_policy, probe,
                                               unknown_class)
from kerascv_suite.data.image_io import DEFAULT_MAX_PIXELS, write_image
from kerascv_suite.data.paths import safe_join
from kerascv_suite.data.rle import check_segmentation, mask_to_polygons, rle_encode


def load_json(path):
    """`json.load` that names the file, line and column of a syntax error."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise AnnotationError(path, None, f"malformed JSON at line {error.lineno}, column "
                              f"{error.colno}: {error.msg}; fix the file (`kcv data check DIR "
                              "--format coco` checks the folder)") from None
    except UnicodeDecodeError as error:
        raise AnnotationError(path, None, f"not UTF-8 text (byte {error.start})") from None


def coco_paths(path, split="train", image_dir=None):
    """`(annotation_json, image_dir)` for a root folder + split, or for a JSON file."""
    path = Path(path)
    if path.is_dir():
        json_path = path / "annotations" / f"instances_{split}.json"
        return json_path, Path(image_dir) if image_dir else path / split
    if image_dir is None:
        stem = path.stem
        name = stem[len("instances_"):] if stem.startswith("instances_") else None
        guess = path.parent.parent / name if name else None
        image_dir = guess if guess is not None and guess.is_dir() else path.parent
    return path, Path(image_dir)


def _require(mapping, key, kind, source, entry):
    if not isinstance(mapping, dict) or key not in mapping:
        raise AnnotationError(source, entry, f"{kind} has no {key!r} field")
    return mapping[key]


def read_coco(path, split="train", *, image_dir=None, include_crowd=False,
              unknown_class_policy="error", check_images=True, max_pixels=DEFAULT_MAX_PIXELS,
              allow_truncated=False, masks=None):
    """Reads a COCO-format annotation file.

    Args:
        path: a dataset root (with `annotations/instances_<split>.json` and `<split>/`)
            or a JSON file (images in `image_dir`, default: the `<split>` folder next to
            `annotations/` named after the file, else the JSON's folder).
        split: used when `path` is a folder.
        image_dir: where `file_name`s are resolved (they may not leave it).
        include_crowd: keep `iscrowd=1` annotations as boxes (see module docstring).
        unknown_class_policy: "error" (an annotation whose `category_id` is not in
            `categories` raises naming the file and annotation id) or "skip" (counted).
        check_images: header-check every image now; the header's size wins over the
            JSON's `width`/`height` for clipping boxes.
        masks: None (default): samples carry `instance_masks` and `mask` when any
            annotation has a segmentation (an annotation without one gets an empty
            instance mask). True: instance masks are required (instance segmentation):
            an annotation without a usable segmentation is a counted skip ("no
            segmentation"), and a file without any raises `DataError`. False: boxes only;
            segmentations are neither checked nor decoded.

    Returns:
        A `Dataset` with task {"detection"} plus "segmentation" when samples carry masks
        and "keypoints" when any category has keypoints.
    """
    if masks not in (None, True, False):
        raise ValueError(f"masks must be None, True or False. Received: masks={masks!r}")
    check_policy(unknown_class_policy)
    json_path, image_dir = coco_paths(path, split, image_dir)
    if not json_path.exists():
        raise DataError(f"COCO annotation file {json_path} does not exist")
    data = load_json(json_path)
    if not isinstance(data, dict):
        raise AnnotationError(json_path, None, "top level is not a JSON object")
    images = _require(data, "images", "file", json_path, None)
    categories = data.get("categories", [])
    cats = sorted(categories, key=lambda c: _require(c, "id", "category", json_path, None))
    class_of = {c["id"]: i for i, c in enumerate(cats)}
    class_names = [str(_require(c, "name", "category", json_path, f"category {c['id']}"))
                   for c in cats]
    num_kp = max([len(c.get("keypoints", [])) for c in cats] + [0])
    annotations = data.get("annotations", [])
    has_seg = masks is not False and any(a.get("segmentation") for a in annotations
                                         if isinstance(a, dict))
    if masks and not has_seg:
        raise DataError(f"{json_path}: no annotation has a 'segmentation', so there are no "
                        "instance masks to read; use a COCO file with polygons or RLE, or "
                        "read it for boxes only (masks=False)")
    tasks = {"detection"} | ({"segmentation"} if has_seg else set()) | \
        ({"keypoints"} if num_kp else set())
    dataset = RecordDataset([], class_names, tasks, has_background=True, max_pixels=max_pixels,
                            allow_truncated=allow_truncated, root=image_dir)
    skipped = dataset.skipped

    by_image = {}
    annotation_index = {}
    for k, ann in enumerate(annotations):
        entry = f"annotation {ann.get('id', k) if isinstance(ann, dict) else k}"
        image_id = _require(ann, "image_id", "annotation", json_path, entry)
        if "id" in ann:
            first = annotation_index.setdefault(ann["id"], k)
            if first != k:
                raise AnnotationError(
                    json_path, entry, f"duplicate annotation id {ann['id']!r}: entries "
                    f"{first} and {k} of 'annotations' (image ids "
                    f"{annotations[first].get('image_id')!r} and {image_id!r}) share it; "
                    "give every annotation its own id")
        by_image.setdefault(image_id, []).append((entry, ann))
    seen = set()
    for k, info in enumerate(images):
        image_id = _require(info, "id", "image", json_path, f"image {k}")
        entry = f"image {image_id}"
        if image_id in seen:
            raise AnnotationError(json_path, entry, "duplicate image id")
        seen.add(image_id)
        file_name = _require(info, "file_name", "image", json_path, entry)
        image_path = safe_join(image_dir, file_name, source=json_path, entry=entry)
        size = (info.get("height"), info.get("width"))
        if check_images or None in size:
            size = probe(image_path, source=json_path, entry=entry, skipped=skipped,
                         max_pixels=max_pixels, allow_truncated=allow_truncated)
            if size is None:
                by_image.pop(image_id, None)
                continue
        elif not image_path.exists():
            skipped.add(image_path, entry, "missing image")
            by_image.pop(image_id, None)
            continue
        record = _record(image_path, size, by_image.pop(image_id, []), json_path, class_of,
                         class_names, unknown_class_policy, include_crowd, num_kp,
                         "required" if masks else has_seg, skipped)
        dataset.records.append(record)
    for image_id, anns in by_image.items():
        for entry, _ in anns:
            skipped.add(json_path, entry, "annotation for unknown image id")
    return dataset


def _segmentation(ann, json_path, entry, height, width):
    """The annotation's checked segmentation (None when it has none that can be drawn)."""
    segmentation = ann.get("segmentation") or None
    if segmentation is None:
        return None
    try:
        return check_segmentation(segmentation, height, width)
    except ValueError as error:
        raise AnnotationError(json_path, entry, f"bad segmentation: {error}; fix or remove "
                              "it, or read the file for boxes only (masks=False)") from None


def _record(image_path, size, anns, json_path, class_of, class_names, policy, include_crowd,
            num_kp, has_seg, skipped):
    """One image's record; `has_seg` is False, True, or "required" (`masks=True`)."""
    height, width = (int(v) for v in size)
    boxes, classes, crowd, segments, keypoints, entries, crowd_segments = [], [], [], [], [], [], []
    for entry, ann in anns:
        category = ann.get("category_id")
        if category not in class_of:
            unknown_class(policy, json_path, entry, category, class_names, skipped)
            continue
        is_crowd = bool(ann.get("iscrowd", 0))
        segmentation = _segmentation(ann, json_path, entry, height, width) if has_seg else None
        if is_crowd and not include_crowd:
            if segmentation is not None:
                crowd_segments.append(segmentation)
            continue
        bbox = ann.get("bbox")
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            raise AnnotationError(json_path, entry, f"bbox must be [x, y, width, height]. "
                                  f"Received: {bbox!r}")
        try:
            x, y, w, h = (float(v) for v in bbox)
        except (TypeError, ValueError):
            raise AnnotationError(json_path, entry, f"bbox is not numbers: {bbox!r}") from None
        if has_seg == "required" and segmentation is None:
            skipped.add(json_path, entry, "no segmentation")
            continue
        # COCO's xywh to the data layer's xyxy in Python, not keras.utils.bounding_boxes:
        # the data layer stays free of Keras (and a Keras call per image costs ms).
        boxes.append([x, y, x + w, y + h])
        classes.append(class_of[category])
        crowd.append(is_crowd)
        segments.append(segmentation)
        points = np.zeros((num_kp, 3), dtype=np.float32)
        if num_kp and ann.get("keypoints"):
            flat = np.asarray(ann["keypoints"], dtype=np.float32).reshape(-1, 3)
            points[:len(flat)] = flat[:num_kp]
        keypoints.append(points)
        entries.append(entry)
    kept, keep = clean_boxes(boxes, height, width, source=json_path, entries=entries,
                             skipped=skipped)
    record = {"path": str(image_path), "boxes": kept,
              "classes": np.asarray(classes, dtype=np.int32)[keep].reshape(-1)}
    if include_crowd:
        record["iscrowd"] = np.asarray(crowd, dtype=bool)[keep].reshape(-1)
    if num_kp:
        record["keypoints"] = (np.stack(keypoints)[keep] if len(keep) else
                               np.zeros((0, num_kp, 3), np.float32))
    if has_seg:
        record["segments"] = [segments[i] for i in keep]
        record["crowd_segments"] = crowd_segments
        record["size"] = (height, width)
    return record


def write_coco(ds, out, split="train", *, segmentation="rle", image_ext=".jpg"):
    """Writes `out/<split>/<stem><ext>` and `out/annotations/instances_<split>.json`.

    Args:
        segmentation: "rle" (compressed RLE, exact) or "polygon" (outer contours; holes
            are lost). Written from `"instance_masks"`; a semantic-only mask cannot be
            split into instances and is not written.

    Returns:
        The number of images written.
    """
    if segmentation not in ("rle", "polygon"):
        raise ValueError(f"segmentation must be 'rle' or 'polygon'. "
                         f"Received: segmentation={segmentation!r}")
    out = Path(out)
    stems = StemAllocator()
    images, annotations = [], []
    num_kp = 0
    for index, sample in enumerate(ds):
        stem = stems(sample, index)
        image = sample["image"]
        file_name = f"{stem}{image_ext}"
        write_image(out / split / file_name, image)
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": file_name, "height": int(image.shape[0]),
                       "width": int(image.shape[1])})
        boxes = sample.get("boxes", np.zeros((0, 4)))
        for k, (box, class_id) in enumerate(zip(boxes, sample.get("classes", ()))):
            x0, y0, x1, y1 = (float(v) for v in box)
            ann = {"id": len(annotations) + 1, "image_id": image_id,
                   "category_id": int(class_id) + 1,
                   "bbox": [x0, y0, x1 - x0, y1 - y0],  # xyxy -> COCO xywh, as when reading
                   "area": (x1 - x0) * (y1 - y0),
                   "iscrowd": int(sample["iscrowd"][k]) if "iscrowd" in sample else 0}
            if "instance_masks" in sample:
                instance = sample["instance_masks"][k]
                ann["area"] = float(instance.sum())
                ann["segmentation"] = (rle_encode(instance) if segmentation == "rle" or
                                       ann["iscrowd"] else mask_to_polygons(instance))
            if "keypoints" in sample:
                points = np.asarray(sample["keypoints"][k], dtype=np.float64)
                num_kp = max(num_kp, len(points))
                ann["keypoints"] = [round(float(v), 3) for v in points.reshape(-1)]
                ann["num_keypoints"] = int((points[:, 2] > 0).sum())
            annotations.append(ann)
    categories = []
    for class_id, name in enumerate(ds.class_names):
        category = {"id": class_id + 1, "name": name, "supercategory": name}
        if num_kp:
            category["keypoints"] = [f"p{k}" for k in range(num_kp)]
            category["skeleton"] = []
        categories.append(category)
    json_path = out / "annotations" / f"instances_{split}.json"
    os.makedirs(json_path.parent, exist_ok=True)
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump({"info": {"description": "written by kerascv_suite.data"}, "licenses": [],
                   "images": images, "annotations": annotations, "categories": categories},
                  handle)
    return len(images)
