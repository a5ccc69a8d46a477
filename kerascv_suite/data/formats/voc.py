"""Pascal VOC: `Annotations/<id>.xml`, `JPEGImages/`, `SegmentationClass/<id>.png`,
`SegmentationObject/<id>.png`, `ImageSets/{Main,Segmentation}/<split>.txt`.

Reference: Everingham et al., "The Pascal Visual Object Classes (VOC) Challenge", IJCV 2010.

Coordinates: VOC boxes are 1-based inclusive pixel indices; we read
`(xmin - 1, ymin - 1, xmax, ymax)` as absolute `xyxy` pixel edges (Detectron2's
convention) and write the inverse. Masks are palette PNGs whose indices are class ids
(0 = background, `c + 1` = class `c`, 255 = "void" outline, our ignore).

Instance masks (`read_voc(..., instance_masks=True)`): `SegmentationObject/<id>.png`
holds instance ids (0 = background, 255 = void), and instance `i` is the `i`-th
`<object>` of the XML (the devkit's rule, counting every object, difficult ones too);
`SegmentationClass/<id>.png` gives each pixel's class. When a sample is loaded, every
instance id must name an XML object and its pixels must carry that object's class in
`SegmentationClass`; a disagreement raises `AnnotationError` naming the PNG and the
instance (the loader counts it as a skip). An object without pixels in
`SegmentationObject` is dropped from the sample and counted ("object without instance
pixels").

Class names: `class_names=` if given, else `<root>/labels.txt` (one per line, written by
`write_voc`), else the 20 VOC classes.
"""

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from kerascv_suite.data.dataset import RecordDataset, clean_boxes
from kerascv_suite.data.errors import AnnotationError, BadImageError, DataError
from kerascv_suite.data.formats.common import (LABELS_FILE, StemAllocator, check_policy,
                                               number, probe, read_labels, split_background,
                                               unknown_class, write_labels)
from kerascv_suite.data.image_io import DEFAULT_MAX_PIXELS, read_mask, write_image, write_mask
from kerascv_suite.data.paths import safe_join

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")


def _parse_xml(path):
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as error:
        line, column = error.position
        raise AnnotationError(path, None, f"malformed XML at line {line}, column {column}: "
                              f"{error}; fix or remove the file (`kcv data check DIR "
                              "--format voc` checks the folder)") from None


def _text(node, tag, source, entry, cast=str, default=None):
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        if default is not None:
            return default
        raise AnnotationError(source, entry, f"missing <{tag}>")
    try:
        return cast(child.text.strip())
    except ValueError:
        raise AnnotationError(source, entry, f"<{tag}> is not a number: "
                              f"{child.text.strip()!r}") from None


def _read_ids(path):
    with open(path, encoding="utf-8") as handle:
        # Main/<class>_<split>.txt lines carry a second column (1/-1/0); the id is first.
        return [line.split()[0] for line in handle if line.strip()]


def read_voc(root, split="train", *, task=None, class_names=None, unknown_class_policy="error",
             keep_difficult=True, check_images=True, max_pixels=DEFAULT_MAX_PIXELS,
             allow_truncated=False, instance_masks=False):
    """Reads a Pascal VOC split.

    Args:
        root: the folder holding `Annotations/`, `JPEGImages/`, `ImageSets/` (e.g.
            `VOCdevkit/VOC2012`).
        split: a list name in `ImageSets/Main` or `ImageSets/Segmentation`.
        task: "detection" (ids from `ImageSets/Main`, boxes) or "segmentation" (ids from
            `ImageSets/Segmentation`, masks plus boxes where the XML exists); default:
            segmentation with `instance_masks`, else detection when
            `ImageSets/Main/<split>.txt` exists.
        class_names: class order; default `labels.txt` or the 20 VOC classes.
        unknown_class_policy: "error" (default: an object name not in `class_names`
            raises `AnnotationError` naming the XML and the object, since it usually
            means the wrong class list) or "skip" (drop the object, count it).
        keep_difficult: keep objects flagged `difficult` (samples carry `"difficult"`).
        check_images: header-check every image now (bad ones become counted skips).
        instance_masks: samples also carry `instance_masks` `(num_boxes, height, width)`
            uint8 0/1 from `SegmentationObject/` (see the module docstring) and the
            semantic `mask`; an id without its XML, object PNG or class PNG is a counted
            skip.

    Returns:
        A `Dataset`. Missing images/masks and degenerate boxes are counted skips;
        malformed XML and ids escaping `root` raise.
    """
    check_policy(unknown_class_policy)
    root = Path(root)
    main = root / "ImageSets" / "Main" / f"{split}.txt"
    seg = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if task is None:
        task = "detection" if main.exists() and not instance_masks else "segmentation"
    if task not in ("detection", "segmentation"):
        raise ValueError(f"task must be 'detection' or 'segmentation'. Received: task={task!r}")
    list_file = main if task == "detection" else seg
    if not list_file.exists():
        kind = "Main" if task == "detection" else "Segmentation"
        raise DataError(f"VOC split list {list_file} does not exist; a VOC {task} dataset "
                        f"lists its {split!r} image ids in ImageSets/{kind}/{split}.txt, one "
                        "per line (`kcv data make shapes DIR --format voc` writes an "
                        "example)")
    if class_names is None:
        labels = root / LABELS_FILE
        class_names = read_labels(labels) if labels.exists() else list(VOC_CLASSES)
        class_names = split_background(class_names)[1]
    index_of = {name: i for i, name in enumerate(class_names)}
    tasks = {"detection"} if task == "detection" and not instance_masks else \
        {"segmentation", "detection"}
    kind = VOCInstanceDataset if instance_masks else RecordDataset
    dataset = kind([], class_names, tasks, has_background=True, max_pixels=max_pixels,
                   allow_truncated=allow_truncated, root=root)
    skipped = dataset.skipped
    for line_no, image_id in enumerate(_read_ids(list_file), start=1):
        entry = f"line {line_no}"
        xml_path = safe_join(root / "Annotations", f"{image_id}.xml", source=list_file,
                             entry=entry)
        record = {}
        xml_root = None
        if xml_path.exists():
            xml_root = _parse_xml(xml_path)
            filename = _text(xml_root, "filename", xml_path, None, default=f"{image_id}.jpg")
            image_path = safe_join(root / "JPEGImages", filename, source=xml_path,
                                   entry="<filename>")
        elif task == "detection" or instance_masks:
            skipped.add(xml_path, entry, "missing annotation file")
            continue
        else:
            image_path = safe_join(root / "JPEGImages", f"{image_id}.jpg", source=list_file,
                                   entry=entry)
        if task == "segmentation":
            mask_path = safe_join(root / "SegmentationClass", f"{image_id}.png",
                                  source=list_file, entry=entry)
            if not mask_path.exists():
                skipped.add(mask_path, entry, "missing mask")
                continue
            record["mask_path"] = str(mask_path)
        if instance_masks and not _instance_paths(root, image_id, list_file, entry, record,
                                                  skipped):
            continue
        size = None
        if check_images or xml_root is None:
            size = probe(image_path, source=list_file, entry=entry, skipped=skipped,
                         max_pixels=max_pixels, allow_truncated=allow_truncated)
            if size is None:
                continue
        elif not image_path.exists():
            skipped.add(image_path, entry, "missing image")
            continue
        record["path"] = str(image_path)
        if xml_root is not None:
            if size is None:
                size_node = xml_root.find("size")
                if size_node is None:
                    raise AnnotationError(xml_path, None, "missing <size> (or pass "
                                          "check_images=True to read it from the image)")
                size = (_text(size_node, "height", xml_path, "<size>", float),
                        _text(size_node, "width", xml_path, "<size>", float))
            _objects(xml_root, xml_path, size, index_of, unknown_class_policy, keep_difficult,
                     record, skipped)
            if instance_masks:
                record["xml_path"] = str(xml_path)
            else:
                del record["instance_ids"], record["num_objects"]
        dataset.records.append(record)
    if task == "segmentation" and not all("boxes" in r for r in dataset.records):
        dataset.task = frozenset({"segmentation"})
    return dataset


def _instance_paths(root, image_id, list_file, entry, record, skipped):
    """Adds the SegmentationObject and SegmentationClass PNGs of `image_id` to `record`, or
    counts the one that is missing and returns False."""
    for folder, key, reason in (("SegmentationObject", "object_path", "missing instance mask"),
                                ("SegmentationClass", "class_path", "missing mask")):
        path = safe_join(root / folder, f"{image_id}.png", source=list_file, entry=entry)
        if not path.exists():
            skipped.add(path, entry, reason)
            return False
        record[key] = str(path)
    return True


class VOCInstanceDataset(RecordDataset):
    """VOC samples with `instance_masks` from `SegmentationObject/` (see the module
    docstring for the rule that matches instances to XML objects and what is checked)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._counted = set()

    def load(self, index):
        sample = super().load(index)
        record = self.records[index]
        shape = sample["image"].shape[:2]
        objects = self._read_png(record["object_path"], shape)
        classes = sample["mask"] if "mask" in sample else \
            self._read_png(record["class_path"], shape)
        ids = np.unique(objects)
        extra = ids[(ids > 0) & (ids != 255) & (ids > record["num_objects"])]
        if len(extra):
            raise AnnotationError(
                record["object_path"], f"instance {int(extra[0])}",
                f"no such object: {record['xml_path']} has {record['num_objects']} <object> "
                "entries (VOC instance i is the i-th <object>); fix the PNG or the XML")
        instances = np.zeros((len(record["instance_ids"]), *shape), np.uint8)
        keep = []
        for row, (instance_id, class_id) in enumerate(zip(record["instance_ids"],
                                                          sample["classes"])):
            pixels = objects == instance_id
            if not pixels.any():
                self._count(index, record["object_path"], f"instance {int(instance_id)}",
                            "object without instance pixels")
                continue
            labels = np.unique(classes[pixels])
            labels = labels[labels != 255]  # a void pixel inside an instance says nothing
            if len(labels) and labels.tolist() != [int(class_id) + 1]:
                names = [self.mask_class_names[v] if v < len(self.mask_class_names)
                         else str(int(v)) for v in labels]
                raise AnnotationError(
                    record["class_path"], f"instance {int(instance_id)}",
                    f"SegmentationClass labels its pixels {names}, but object {int(instance_id)} "
                    f"of {record['xml_path']} is {self.class_names[int(class_id)]!r}; fix the "
                    "PNG or the XML (VOC instance i is the i-th <object>)")
            instances[row] = pixels
            keep.append(row)
        sample["instance_masks"] = instances[keep]
        for key in ("boxes", "classes", "difficult"):
            sample[key] = sample[key][keep]
        return sample

    def _read_png(self, path, shape):
        mask = read_mask(path, max_pixels=self.max_pixels)
        if mask.shape != shape:
            raise BadImageError(path, "mask size differs from image",
                                f"mask {mask.shape[1]}x{mask.shape[0]}, image "
                                f"{shape[1]}x{shape[0]}")
        return mask

    def _count(self, index, path, entry, reason):
        # Once per entry, however often the sample is loaded (every epoch).
        if (index, entry) not in self._counted:
            self._counted.add((index, entry))
            self.skipped.add(path, entry, reason)


def _objects(xml_root, xml_path, size, index_of, policy, keep_difficult, record, skipped):
    boxes, classes, difficult, entries, numbers = [], [], [], [], []
    objects = xml_root.findall("object")
    for k, node in enumerate(objects):
        name = _text(node, "name", xml_path, f"object {k}")
        entry = f"object {k} ({name!r})"
        if name not in index_of:
            unknown_class(policy, xml_path, entry, name, index_of, skipped)
            continue
        is_difficult = bool(_text(node, "difficult", xml_path, entry, int, default=0))
        if is_difficult and not keep_difficult:
            continue
        box_node = node.find("bndbox")
        if box_node is None:
            raise AnnotationError(xml_path, entry, "missing <bndbox>")
        xmin, ymin, xmax, ymax = (_text(box_node, tag, xml_path, entry, float)
                                  for tag in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append([xmin - 1, ymin - 1, xmax, ymax])
        classes.append(index_of[name])
        difficult.append(is_difficult)
        entries.append(entry)
        numbers.append(k + 1)
    kept_boxes, keep = clean_boxes(boxes, size[0], size[1], source=xml_path, entries=entries,
                                   skipped=skipped)
    record["boxes"] = kept_boxes
    record["classes"] = np.asarray(classes, dtype=np.int32)[keep] if len(keep) else \
        np.zeros((0,), np.int32)
    record["difficult"] = np.asarray(difficult, dtype=bool)[keep] if len(keep) else \
        np.zeros((0,), bool)
    # Instance ids of SegmentationObject: 1-based positions among all XML objects.
    record["instance_ids"] = np.asarray(numbers, dtype=np.int64)[keep].reshape(-1)
    record["num_objects"] = len(objects)


def write_voc(ds, out, split="train", *, image_ext=".jpg"):
    """Writes a dataset in VOC layout: XML for samples with boxes, palette PNG for masks.

    Samples with `instance_masks` also get `SegmentationObject/<stem>.png` (instance
    `k + 1` = box `k` = the `k + 1`-th XML object, 0 background; where instances overlap
    the later one wins) and a `SegmentationClass` PNG (their `mask`, else one painted from
    the instances), so `read_voc(..., instance_masks=True)` reads them back.

    Also writes `labels.txt` (the class names) so `read_voc` gets the same class ids
    back. All splits share `JPEGImages/`, so sample stems (from `sample["path"]`) must
    differ between splits written to the same folder. Masks require a dataset whose masks use 0 = background (`has_background`).

    Returns:
        The number of samples written.
    """
    out = Path(out)
    has_masks = "segmentation" in ds.task
    if has_masks and not ds.has_background:
        raise DataError("VOC masks use 0 = background and c + 1 for class c, but this dataset's "
                        f"masks have no background class (mask classes: {ds.mask_class_names}); "
                        "write it with format 'masks' instead")
    write_labels(str(out / LABELS_FILE), ds.class_names)
    stems = StemAllocator()
    main_ids, seg_ids = [], []
    for index, sample in enumerate(ds):
        stem = stems(sample, index)
        image = sample["image"]
        write_image(out / "JPEGImages" / f"{stem}{image_ext}", image)
        if "boxes" in sample:
            _write_xml(out / "Annotations" / f"{stem}.xml", f"{stem}{image_ext}", image.shape,
                       sample, ds.class_names)
            main_ids.append(stem)
        mask = sample.get("mask")
        if "instance_masks" in sample and "boxes" in sample:
            objects, painted = instance_pngs(sample, out / "Annotations" / f"{stem}.xml")
            write_mask(out / "SegmentationObject" / f"{stem}.png", objects)
            mask = painted if mask is None else mask
        if mask is not None:
            write_mask(out / "SegmentationClass" / f"{stem}.png", mask)
            seg_ids.append(stem)
    for kind, ids in (("Main", main_ids), ("Segmentation", seg_ids)):
        if ids:
            path = out / "ImageSets" / kind / f"{split}.txt"
            os.makedirs(path.parent, exist_ok=True)
            path.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    return len(set(main_ids) | set(seg_ids))


def instance_pngs(sample, xml_path):
    """`(object ids, class ids)` `(height, width)` uint8 images of a sample's instance
    masks, as VOC's SegmentationObject and SegmentationClass PNGs store them."""
    instances = np.asarray(sample["instance_masks"])
    if len(instances) > 254:
        raise DataError(f"{xml_path}: {len(instances)} instances, but a VOC SegmentationObject "
                        "PNG holds at most 254 (255 is void); write the sample as COCO instead")
    objects = np.zeros(instances.shape[1:], np.uint8)
    painted = np.zeros(instances.shape[1:], np.uint8)
    for k, (instance, class_id) in enumerate(zip(instances, sample["classes"])):
        objects[instance > 0] = k + 1
        painted[instance > 0] = int(class_id) + 1
    return objects, painted


def _write_xml(path, filename, shape, sample, class_names):
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = filename
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(shape[1])
    ET.SubElement(size, "height").text = str(shape[0])
    ET.SubElement(size, "depth").text = str(shape[2] if len(shape) == 3 else 1)
    segmented = "mask" in sample or "instance_masks" in sample
    ET.SubElement(root, "segmented").text = "1" if segmented else "0"
    difficult = sample.get("difficult", np.zeros(len(sample["boxes"]), bool))
    for box, class_id, hard in zip(sample["boxes"], sample["classes"], difficult):
        node = ET.SubElement(root, "object")
        ET.SubElement(node, "name").text = class_names[int(class_id)]
        ET.SubElement(node, "pose").text = "Unspecified"
        ET.SubElement(node, "truncated").text = "0"
        ET.SubElement(node, "difficult").text = "1" if hard else "0"
        bndbox = ET.SubElement(node, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"),
                              (box[0] + 1, box[1] + 1, box[2], box[3])):
            ET.SubElement(bndbox, tag).text = number(value)
    ET.indent(root)
    os.makedirs(path.parent, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=False)
