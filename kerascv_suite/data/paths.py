"""Resolving file names found inside annotation files, refusing ones that escape the root."""

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from kerascv_suite.data.errors import UnsafePathError


def safe_join(root, name, *, source=None, entry=None):
    """Joins `name` (from an annotation file) to `root`, refusing anything outside `root`.

    Absolute paths (POSIX or Windows, e.g. `/etc/passwd`, `C:\\x`) and names whose `..`
    parts climb above `root` raise `UnsafePathError` naming `source` and `entry`: an
    annotation that points outside its dataset is either corrupt or hostile, and
    reading it silently would be worse than stopping.

    Args:
        root: the dataset directory.
        name: the relative file name as written in the annotation.
        source: the annotation file the name came from (for the message).
        entry: which entry in `source` (for the message).

    Returns:
        A `Path` inside `root`.
    """
    text = str(name)
    source = source if source is not None else root
    if not text or "\x00" in text:
        raise UnsafePathError(source, entry, f"invalid file name {text!r}")
    if (PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute()
            or PureWindowsPath(text).drive):
        raise UnsafePathError(source, entry, f"absolute file name {text!r} is not allowed; "
                              "names must be relative to the dataset root")
    root_abs = os.path.abspath(root)
    joined = os.path.abspath(os.path.join(root_abs, text.replace("\\", "/")))
    if os.path.commonpath([root_abs, joined]) != root_abs:
        raise UnsafePathError(source, entry, f"file name {text!r} escapes the dataset root "
                              f"{root_abs}; file names must stay inside the dataset folder "
                              "(fix the annotation, or move the files under --data)")
    return Path(joined)
