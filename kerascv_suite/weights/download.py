"""Download, verify and cache catalog weights files.

Guarantees:
- Files live in the Keras cache (`$KERAS_HOME/models`, default `~/.keras/models`, or
  `$KCV_WEIGHTS_CACHE`) under their published names, so a file copied there by hand is used
  without network once its hash checks out.
- A file in the cache always passed its hash check: downloads go to a temporary `.part` name
  in the same folder and are renamed only after verification; a failed or interrupted
  download and a file whose hash does not match are removed.
- `$KCV_WEIGHTS_BASE_URL` replaces everything before the file name of every URL (a mirror, or
  a loopback server in tests).
"""

from __future__ import annotations

import hashlib
import os

from kerascv_suite.weights.errors import WeightsError

BASE_URL_ENV = "KCV_WEIGHTS_BASE_URL"
CACHE_ENV = "KCV_WEIGHTS_CACHE"
CHUNK_BYTES = 1 << 20


def cache_dir() -> str:
    """The folder weights files are cached in (read from the environment at each call)."""
    folder = os.environ.get(CACHE_ENV)
    if not folder:
        folder = os.path.join(os.environ.get("KERAS_HOME") or "~/.keras", "models")
    return os.path.abspath(os.path.expanduser(folder))


def cached_path(entry) -> str:
    """Where `entry`'s published file is (or will be) cached."""
    return os.path.join(cache_dir(), entry.file_name)


def converted_path(entry) -> str:
    """Where the Keras weights converted from `entry`'s published file are cached."""
    return os.path.join(cache_dir(), "kcv", f"{entry.name}.weights.h5")


def source_url(entry) -> str:
    """The URL `entry` is downloaded from: its published URL, or `$KCV_WEIGHTS_BASE_URL`."""
    base = os.environ.get(BASE_URL_ENV)
    if base:
        return f"{base.rstrip('/')}/{entry.file_name}"
    return entry.url


def file_digest(path, algorithm) -> str:
    """Hex digest (`"md5"` or `"sha256"`) of the file at `path`, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_hash(entry, path):
    """Raises `WeightsError` (and removes the file) unless `path` has `entry`'s hash.

    The published hash may be a prefix of the digest (torchvision's file names carry the first
    8 hex digits of the sha256), so the digest must start with it.
    """
    digest = file_digest(path, entry.hash_algorithm)
    if digest.startswith(entry.hash):
        return
    os.remove(path)
    raise WeightsError(
        f"Weights file {path} for {entry.name!r} has {entry.hash_algorithm} {digest}, not the "
        f"published {entry.hash}; the file was removed. Download it again from "
        f"{source_url(entry)}."
    )


def is_cached(entry) -> bool:
    """Whether `entry`'s file (or the weights converted from it) is in the cache."""
    return os.path.isfile(cached_path(entry)) or os.path.isfile(converted_path(entry))


def fetch(entry) -> str:
    """Path of `entry`'s verified file in the cache, downloaded with `keras.utils.get_file`
    when it is not there yet.

    Args:
        entry: a `WeightsEntry`.

    Returns:
        The local path of the file, whose hash matches the catalog's.

    Raises:
        WeightsError: the download failed (no network, server down, HTTP error, interrupted);
            the message names the URL and the path where the file can be placed by hand. Or
            the file's hash does not match (the file is removed).
    """
    path = cached_path(entry)
    if os.path.isfile(path):
        check_hash(entry, path)
        return path
    import keras

    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    url = source_url(entry)
    part = f"{path}.{os.getpid()}.part"
    try:
        keras.utils.get_file(
            fname=os.path.basename(part), origin=url, cache_dir=folder, cache_subdir=folder,
            force_download=True,
        )
        if not os.path.isfile(part):
            raise OSError("the download wrote no file")
        check_hash(entry, part)
        os.replace(part, path)
    except WeightsError:
        raise
    except Exception as e:  # keras.utils.get_file re-raises URL errors as plain Exception.
        raise WeightsError(
            f"Could not download weights {entry.name!r} from {url} ({e}). Without network, "
            f"place the file at {path} by hand."
        ) from None
    finally:
        if os.path.exists(part):
            os.remove(part)
    return path
