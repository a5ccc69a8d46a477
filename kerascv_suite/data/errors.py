"""Exceptions of the data layer and the skip log that datasets keep.

Policy (one place, so every reader behaves the same):

* Broken *files* that make the whole dataset suspect (malformed XML/JSON/YAML, a
  YOLO line that is not numbers, a path that escapes the dataset root) raise
  `AnnotationError` (or `UnsafePathError`) naming the file, the entry and, where the
  parser gives it, the line and column.
* Broken *entries* that a run can live without (a missing or undecodable image, a
  zero-area box, a missing mask) are skipped and counted in `dataset.skipped`.
* Repairs (a box clipped to the image) are counted in `dataset.skipped` too, under a
  reason starting with "clipped", so a run reports everything it changed.
"""

import collections


class DataError(Exception):
    """Base class of all errors raised by `kerascv_suite.data`."""


class BadImageError(DataError):
    """An image file that cannot be decoded (or must not be: a decompression bomb).

    Attributes:
        path: the offending file.
        reason: a short reason, the same for all files with the same problem ("empty
            file", "truncated or corrupt data", ...), so skips can be counted by it.
        detail: the specifics (decoder message, header size), or None.
    """

    def __init__(self, path, reason, detail=None):
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        extra = f" ({detail})" if detail else ""
        super().__init__(f"Cannot decode image {self.path}: {reason}{extra}")


class AnnotationError(DataError):
    """An annotation file or entry that is wrong in a way we refuse to guess about.

    Attributes:
        path: the annotation file.
        entry: which entry inside it (object index, line number, annotation id) or None.
        reason: what is wrong.
    """

    def __init__(self, path, entry, reason):
        self.path = str(path)
        self.entry = entry
        self.reason = reason
        where = f" (entry {entry})" if entry is not None else ""
        super().__init__(f"{self.path}{where}: {reason}")


class UnsafePathError(AnnotationError):
    """A file name in an annotation that points outside the dataset root."""


class SkipLog(collections.Counter):
    """A `collections.Counter` of skip/repair reasons plus the list of what was skipped.

    `log["missing image"]` is how many entries were skipped for that reason;
    `log.entries` lists `(file, entry, reason)` tuples in the order they happened.
    """

    def __init__(self):
        super().__init__()
        self.entries = []

    def __reduce__(self):
        # Counter pickles as `cls(dict(self))`, which this __init__ does not accept (and which
        # would drop `entries`); every Dataset holds a SkipLog and loader workers unpickle it.
        return type(self), (), {"entries": list(self.entries)}, None, iter(self.items())

    def add(self, file, entry, reason):
        self[reason] += 1
        self.entries.append((str(file), entry, reason))

    def merge(self, other):
        for file, entry, reason in other.entries:
            self.add(file, entry, reason)

    def report(self, max_entries=20):
        """Human-readable summary: counts per reason, then the first `max_entries` items."""
        if not self:
            return "nothing skipped"
        lines = [f"{count:6d}  {reason}" for reason, count in sorted(self.items())]
        for file, entry, reason in self.entries[:max_entries]:
            where = f" [{entry}]" if entry is not None else ""
            lines.append(f"  {file}{where}: {reason}")
        if len(self.entries) > max_entries:
            lines.append(f"  ... and {len(self.entries) - max_entries} more")
        return "\n".join(lines)
