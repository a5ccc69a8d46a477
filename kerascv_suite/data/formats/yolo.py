"""YOLO txt: `images/<split>/*.jpg`, `labels/<split>/*.txt`, `data.yaml`.

One line per object: `class cx cy w h`, normalized to 0..1 by the image size
(Ultralytics' detection format). Lines with `class x0 y0 x1 y1 ...` (three or more
normalized points) are Ultralytics' segmentation format: the box is the polygon's
extent and the polygon becomes an instance mask. `data.yaml` holds `names` (a list or
`{id: name}`), `nc`, and `train`/`val`/`test` as folders or `.txt` image lists relative
to `path` (default: the YAML's folder). A missing label file means "no objects"
(Ultralytics' background images), not an error.
"""

import os
from pathlib import Path

import numpy as np
import yaml

from kerascv_suite.data.dataset import RecordDataset, clean_boxes
from kerascv_suite.data.errors import AnnotationError, DataError
from kerascv_suite.data.formats.common import (StemAllocator, check_policy, list_images,
                                               probe, unknown_class)
from kerascv_suite.data.image_io import DEFAULT_MAX_PIXELS, write_image
from kerascv_suite.data.paths import safe_join
from kerascv_suite.data.rle import mask_to_polygons

YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml")


def load_yaml(path):
    """`yaml.safe_load` that names the file, line and column of a syntax error."""
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise AnnotationError(path, None, f"malformed YAML{where}: {problem}") from None


def find_yaml(path):
    path = Path(path)
    if path.is_file():
        return path
    for name in YAML_NAMES:
        if (path / name).exists():
            return path / name
    raise DataError(f"No {' / '.join(YAML_NAMES)} in {path}")


def _names(config, yaml_path):
    names = config.get("names")
    if isinstance(names, dict):
        try:
            ids = sorted(int(k) for k in names)
        except ValueError:
            raise AnnotationError(yaml_path, "names", "class ids must be integers") from None
        if ids != list(range(len(ids))):
            raise AnnotationError(yaml_path, "names", f"class ids must be 0..{len(ids) - 1}. "
                                  f"Received: {ids}")
        names = [str(names.get(i, names.get(str(i)))) for i in ids]
    elif isinstance(names, list):
        names = [str(n) for n in names]
    elif "nc" in config:
        names = [f"class_{i}" for i in range(int(config["nc"]))]
    else:
        raise AnnotationError(yaml_path, "names", "no class names ('names' or 'nc')")
    if "nc" in config and int(config["nc"]) != len(names):
        raise AnnotationError(yaml_path, "nc", f"nc={config['nc']} but {len(names)} names")
    return names


def _split_images(root, spec, yaml_path, split):
    specs = spec if isinstance(spec, list) else [spec]
    images = []
    for item in specs:
        target = safe_join(root, str(item), source=yaml_path, entry=split)
        if target.is_dir():
            images += list_images(target)
        elif target.suffix == ".txt" and target.exists():
            lines = target.read_text(encoding="utf-8").splitlines()
            for line_no, line in enumerate(lines, start=1):
                if line.strip():
                    images.append(safe_join(root, line.strip(), source=target,
                                            entry=f"line {line_no}"))
        else:
            raise DataError(f"{yaml_path}: {split} path {target} does not exist")
    return images


def label_path(image_path):
    """`.../images/x/y.jpg` -> `.../labels/x/y.txt` (the last `images` folder is replaced)."""
    parts = list(Path(image_path).parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def read_yolo(path, split="train", *, class_names=None, unknown_class_policy="error",
              max_pixels=DEFAULT_MAX_PIXELS, allow_truncated=False):
    """Reads a YOLO dataset split.

    Args:
        path: the folder holding `data.yaml`, or the YAML file.
        split: a key of the YAML ("train", "val", "test").
        class_names: overrides the YAML's names.
        unknown_class_policy: "error" (a class id outside `0..nc-1` raises naming the
            label file and line) or "skip" (counted).

    Image headers are always read: normalized coordinates need the image size.
    A line that is not numbers, or has the wrong count, raises `AnnotationError`
    naming the file and line.
    """
    check_policy(unknown_class_policy)
    yaml_path = find_yaml(path)
    config = load_yaml(yaml_path)
    if not isinstance(config, dict):
        raise AnnotationError(yaml_path, None, "expected a mapping with names and splits")
    names = list(class_names) if class_names is not None else _names(config, yaml_path)
    root = yaml_path.parent
    if config.get("path"):
        root = Path(config["path"])
        root = root if root.is_absolute() else yaml_path.parent / root
    if not config.get(split):
        raise DataError(f"{yaml_path} has no {split!r} split")
    dataset = RecordDataset([], names, {"detection"}, has_background=True, max_pixels=max_pixels,
                            allow_truncated=allow_truncated, root=root)
    segmented = False
    for image_path in _split_images(root, config[split], yaml_path, split):
        size = probe(image_path, source=yaml_path, entry=split, skipped=dataset.skipped,
                     max_pixels=max_pixels, allow_truncated=allow_truncated)
        if size is None:
            continue
        record = _read_labels(label_path(image_path), size, names, unknown_class_policy,
                              dataset.skipped)
        record["path"] = str(image_path)
        segmented |= any(s is not None for s in record.get("segments", ()))
        dataset.records.append(record)
    if segmented:
        dataset.task = frozenset({"detection", "segmentation"})
    else:
        for record in dataset.records:
            record.pop("segments", None)
            record.pop("size", None)
    return dataset


def _read_labels(path, size, names, policy, skipped):
    height, width = size
    boxes, classes, segments, entries = [], [], [], []
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        entry = f"line {line_no}"
        fields = line.split()
        try:
            values = [float(v) for v in fields[1:]]
            class_float = float(fields[0])
        except ValueError:
            raise AnnotationError(path, entry, f"expected numbers. Received: {line.strip()!r}") \
                from None
        if len(values) != 4 and (len(values) < 6 or len(values) % 2):
            raise AnnotationError(path, entry, "expected 'class cx cy w h' or 'class x0 y0 x1 y1 "
                                  f"x2 y2 ...'. Received {len(fields)} values")
        if class_float != int(class_float) or not 0 <= class_float < len(names):
            unknown_class(policy, path, entry, fields[0], names, skipped)
            continue
        if len(values) == 4:
            # The file's rel_center_xywh, converted as keras.utils.bounding_boxes does
            # (`rel_center_xywh` -> `xyxy`) but in Python: the data layer stays free of
            # Keras, and a Keras call per label file (about 3 ms on TensorFlow) would
            # dominate reading a large dataset.
            cx, cy, w, h = values
            boxes.append([(cx - w / 2) * width, (cy - h / 2) * height,
                          (cx + w / 2) * width, (cy + h / 2) * height])
            segments.append(None)
        else:
            points = np.asarray(values).reshape(-1, 2) * [width, height]
            boxes.append([*points.min(axis=0), *points.max(axis=0)])
            segments.append([points.reshape(-1).tolist()])
        classes.append(int(class_float))
        entries.append(entry)
    kept, keep = clean_boxes(boxes, height, width, source=path, entries=entries,
                             skipped=skipped)
    return {"boxes": kept, "classes": np.asarray(classes, dtype=np.int32)[keep].reshape(-1),
            "segments": [segments[i] for i in keep], "size": (height, width)}


def write_yolo(ds, out, split="train", *, image_ext=".jpg", polygons=False):
    """Writes `images/<split>`, `labels/<split>` and updates `data.yaml` (names, nc, split).

    Args:
        polygons: write each object's instance mask outline (largest contour) instead of
            its box, Ultralytics' segmentation format.

    Returns:
        The number of images written.
    """
    out = Path(out)
    stems = StemAllocator()
    written = 0
    for index, sample in enumerate(ds):
        stem = stems(sample, index)
        image = sample["image"]
        height, width = image.shape[:2]
        write_image(out / "images" / split / f"{stem}{image_ext}", image)
        lines = []
        for k, (box, class_id) in enumerate(zip(sample.get("boxes", ()),
                                                sample.get("classes", ()))):
            if polygons and "instance_masks" in sample:
                outlines = mask_to_polygons(sample["instance_masks"][k])
                if outlines:
                    flat = np.asarray(max(outlines, key=len)).reshape(-1, 2) / [width, height]
                    lines.append(f"{int(class_id)} " + " ".join(f"{v:.6f}"
                                                               for v in flat.reshape(-1)))
                    continue
            x0, y0, x1, y1 = (float(v) for v in box)  # to rel_center_xywh, see _read_labels
            lines.append(f"{int(class_id)} {(x0 + x1) / 2 / width:.6f} "
                         f"{(y0 + y1) / 2 / height:.6f} {(x1 - x0) / width:.6f} "
                         f"{(y1 - y0) / height:.6f}")
        label = out / "labels" / split / f"{stem}.txt"
        os.makedirs(label.parent, exist_ok=True)
        label.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        written += 1
    yaml_path = out / "data.yaml"
    config = load_yaml(yaml_path) if yaml_path.exists() else {}
    config = config if isinstance(config, dict) else {}
    config.update({split: f"images/{split}", "nc": len(ds.class_names),
                   "names": list(ds.class_names)})
    os.makedirs(out, exist_ok=True)
    with open(yaml_path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    os.makedirs(out / "images" / split, exist_ok=True)
    return written


