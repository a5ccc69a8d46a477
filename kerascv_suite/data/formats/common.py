"""Helpers shared by the format readers and writers."""

import os
import re
from pathlib import Path

from kerascv_suite.data.errors import AnnotationError, BadImageError
from kerascv_suite.data.image_io import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, check_image

LABELS_FILE = "labels.txt"
BACKGROUND_NAMES = ("background", "_background_", "bg", "__background__")
UNKNOWN_CLASS_POLICIES = ("error", "skip")


def check_policy(unknown_class):
    if unknown_class not in UNKNOWN_CLASS_POLICIES:
        raise ValueError(f"unknown_class must be one of {UNKNOWN_CLASS_POLICIES}. "
                         f"Received: unknown_class={unknown_class!r}")


def unknown_class(policy, source, entry, name, known, skipped):
    """Applies the unknown-class policy: raise naming file and entry, or count a skip."""
    if policy == "error":
        preview = ", ".join(map(str, list(known)[:10]))
        more = ", ..." if len(known) > 10 else ""
        raise AnnotationError(source, entry, f"unknown class {name!r} (known: {preview}{more}); "
                              "rerun with --unknown-class skip to drop such objects, or fix "
                              "the class list (labels.txt, the COCO categories, data.yaml "
                              "names)")
    skipped.add(source, entry, "unknown class")


def probe(path, *, source, entry, skipped, max_pixels=DEFAULT_MAX_PIXELS,
          allow_truncated=False):
    """Checks an image up front (header, and the end of JPEG/PNG files: `check_image`):
    `(height, width)`, or None after counting the skip."""
    if not os.path.exists(path):
        skipped.add(path, entry, "missing image")
        return None
    try:
        return check_image(path, max_pixels=max_pixels, allow_truncated=allow_truncated)
    except BadImageError as error:
        skipped.add(error.path, entry, f"bad image: {error.reason}")
        return None


def read_labels(path):
    """Class names from a text file, one per line (blank lines ignored)."""
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]


def write_labels(path, names):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("".join(f"{name}\n" for name in names))


def split_background(names):
    """`(has_background, class_names)` for a mask label list whose first name may be background."""
    if names and names[0].lower() in BACKGROUND_NAMES:
        return True, list(names[1:])
    return False, list(names)


def list_images(folder):
    """Image files under `folder` (recursively), sorted for a deterministic order."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


class StemAllocator:
    """Unique, file-system-safe stems for written samples, derived from their paths."""

    def __init__(self):
        self._used = set()

    def __call__(self, sample, index):
        stem = Path(str(sample.get("path", ""))).stem or f"{index:06d}"
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip(".") or f"{index:06d}"
        candidate, k = stem, 1
        while candidate in self._used:
            candidate = f"{stem}_{k}"
            k += 1
        self._used.add(candidate)
        return candidate


def number(value):
    """Formats a coordinate compactly: integers without decimals, others to 3 places."""
    value = float(value)
    if value == int(value):
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")


def mask_names_for_writing(ds):
    """`(names, has_background)` a writer should store for a dataset's semantic masks."""
    return ds.mask_class_names, ds.has_background
