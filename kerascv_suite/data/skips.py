"""`SkipReport`: every entry a task's data loading skipped or repaired, by split and reason.

One report per run (`TaskData.skips`), filled with the same reasons `kcv data check` prints
(`dataset.skipped`, see `errors.py` for the policy):

* when the splits are read: a missing image, a header that is not an image, an empty or
  truncated file (a header read plus the last bytes of JPEG/PNG files), a decompression
  bomb, boxes clipped to the image or dropped as inverted / zero-area, unknown classes
  under `--unknown-class skip` (`collect`);
* while training or evaluating: an image that only fails when its pixels are decoded, found
  by a `DataLoader` worker or an evaluation pass (`add`, once per file and reason).

With `strict=True` (the CLI's `--strict`) the first entry added raises `DataError` naming
the file, the entry and the reason, so a run stops before anything is written.

Example:
    >>> report = SkipReport()
    >>> report.collect("train", train_dataset.skipped)
    >>> for line in report.lines():
    ...     print(line)
    >>> report.write(run_dir / "skipped.txt")
    >>> tracker.log_metrics(report.metrics())
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re

from kerascv_suite.data.errors import DataError

# Split name of entries skipped before a split-less folder was divided into train/val/test.
ALL_SPLITS = "all"


@dataclasses.dataclass(frozen=True)
class SkipEntry:
    """One skipped or repaired entry.

    Attributes:
        split: the split it belongs to (`"train"`, `"val"`, `"test"`, or `"all"` for a
            folder read before its seeded split).
        file: the file at fault (the image, or the annotation file for a box or class).
        entry: which entry inside it (`"object 2 ('dog')"`, `"annotation 17"`, `"line 4"`,
            a dataset index) or None when the file is the entry.
        reason: the short reason shared by every entry with the same problem.
    """

    split: str
    file: str
    entry: object
    reason: str

    def describe(self) -> str:
        where = f" [{self.entry}]" if self.entry is not None else ""
        return f"{self.file}{where}: {self.reason}"


class SkipError(DataError):
    """`--strict` refused a skip: `.entry` is the `SkipEntry`."""

    def __init__(self, entry: SkipEntry):
        self.entry = entry
        super().__init__(
            f"{entry.file}" + (f" (entry {entry.entry})" if entry.entry is not None else "")
            + f": {entry.reason} in the {entry.split} split, refused by --strict; fix the "
            "file, or run without --strict to skip and count such entries (`kcv data check "
            "PATH --format FMT` lists them all)")


def reason_key(reason: str) -> str:
    """`"bad image: empty file (0 bytes)"` -> `"bad_image_empty_file_0_bytes"` (a metric
    name part)."""
    return re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_") or "unknown"


class SkipReport:
    """Counts by split and reason of what a task's data loading skipped or repaired.

    Args:
        strict: raise `SkipError` on the first entry instead of counting it.

    Attributes:
        entries: `SkipEntry`s in the order they were found.
        splits: split names seen (in order), including ones with nothing skipped.
    """

    def __init__(self, strict: bool = False):
        self.strict = bool(strict)
        self.entries: list[SkipEntry] = []
        self.splits: list[str] = []
        self._seen = set()
        self._consumed = {}  # id(log) -> (log, entries already collected)

    # === Filling ===

    def add_split(self, split: str):
        """Registers `split` so it is counted (as 0) even when nothing in it is skipped."""
        if split not in self.splits:
            self.splits.append(split)

    def add(self, split, file, entry, reason) -> bool:
        """Counts one entry (once: the same split, file, entry and reason again is ignored).

        Returns:
            Whether the entry was new.

        Raises:
            SkipError: with `strict`.
        """
        item = SkipEntry(str(split), os.fspath(file) if not isinstance(file, str) else file,
                         entry, str(reason))
        key = (item.split, item.file, str(item.entry), item.reason)
        if key in self._seen:
            return False
        if self.strict:
            raise SkipError(item)
        self.add_split(item.split)
        self._seen.add(key)
        self.entries.append(item)
        return True

    def collect(self, split, log):
        """Adds the entries of a dataset's `SkipLog` not collected yet (a log shared by the
        views of one split-less folder is collected once, under the first split given).

        Args:
            split: the split the log belongs to.
            log: a `kerascv_suite.data.SkipLog` (`dataset.skipped`), or None.
        """
        self.add_split(split)
        if log is None:
            return
        _, done = self._consumed.get(id(log), (log, 0))
        for file, entry, reason in log.entries[done:]:
            # Counted as consumed first: under `strict` the add raises, once.
            done += 1
            self._consumed[id(log)] = (log, done)
            self.add(split, file, entry, reason)

    def collect_datasets(self, splits: dict):
        """`collect` of every split's `dataset.skipped`.

        Views of one split-less folder (`SplitView`s sharing its log) had their files
        checked before the folder was split: those entries are counted under `"all"`. A
        split that is another split's dataset (test = val) is not counted twice.

        Args:
            splits: `{split name: dataset or None}`.
        """
        datasets_of_log = collections.defaultdict(set)
        for dataset in splits.values():
            log = getattr(dataset, "skipped", None)
            if log is not None:
                datasets_of_log[id(log)].add(id(dataset))
        for name, dataset in splits.items():
            if dataset is None:
                continue
            log = getattr(dataset, "skipped", None)
            shared = log is not None and len(datasets_of_log[id(log)]) > 1
            self.collect(ALL_SPLITS if shared else name, log)
            self.add_split(name)

    # === Reading ===

    @property
    def total(self) -> int:
        return len(self.entries)

    def __bool__(self):
        return bool(self.entries)

    def __len__(self):
        return len(self.entries)

    def counts(self) -> dict:
        """`{split: Counter(reason -> count)}` over every registered split."""
        out = {split: collections.Counter() for split in self.splits}
        for item in self.entries:
            out.setdefault(item.split, collections.Counter())[item.reason] += 1
        return out

    def lines(self, max_entries: int = 10) -> list[str]:
        """Console lines: a total by split, counts by reason, then the first entries."""
        counts = self.counts()
        if not self.entries:
            checked = ", ".join(self.splits)
            return [f"Skipped: nothing{f' ({checked} checked)' if checked else ''}."]
        by_split = ", ".join(f"{split} {sum(c.values())}" for split, c in counts.items())
        lines = [f"Skipped or repaired {self.total} entries ({by_split}); "
                 "the list is in skipped.txt:"]
        for split, counter in counts.items():
            for reason, count in sorted(counter.items()):
                lines.append(f"  {split:<6} {count:6d}  {reason}")
        for item in self.entries[:max_entries]:
            lines.append(f"  {item.split}: {item.describe()}")
        if self.total > max_entries:
            lines.append(f"  ... and {self.total - max_entries} more")
        return lines

    def write(self, path):
        """Writes `skipped.txt`: a comment line of counts, then `split<TAB>file<TAB>entry
        <TAB>reason` per entry (entry `-` when the file is the entry)."""
        counts = self.counts()
        summary = ", ".join(f"{split} {sum(c.values())}" for split, c in counts.items())
        rows = [f"# {self.total} skipped or repaired ({summary or 'no splits'})\n"]
        rows += [f"{e.split}\t{e.file}\t{'-' if e.entry is None else e.entry}\t{e.reason}\n"
                 for e in self.entries]
        os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("".join(rows))
        return path

    def metrics(self) -> dict:
        """`{"skipped_<split>": n, "skipped_<split>_<reason>": n, ...}` for MLflow (every
        registered split appears, 0 when nothing in it was skipped)."""
        out = {}
        for split, counter in self.counts().items():
            out[f"skipped_{split}"] = sum(counter.values())
            for reason, count in counter.items():
                key = f"skipped_{split}_{reason_key(reason)}"
                out[key] = out.get(key, 0) + count
        return out

    def __repr__(self):
        return f"SkipReport(total={self.total}, splits={self.splits}, strict={self.strict})"
