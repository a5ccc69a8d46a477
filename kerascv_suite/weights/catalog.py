"""The weights catalog: published pretrained weights as data (`catalog*.yaml`).

Each entry names the weights, the registry model they fit, where they are published (URL and
hash), their size, license, the preprocessing and classes they were trained with, and the
metric their source publishes. `KCV_WEIGHTS_CATALOG` names an extra YAML file (same layout)
whose entries are added to, or replace by name, the shipped ones: a private mirror, or the
tests' loopback server.

Example:
    >>> from kerascv_suite.weights import catalog
    >>> catalog.default_entry("resnet18").url
    'https://download.pytorch.org/models/resnet18-f37072fd.pth'
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import os
from importlib import resources

import yaml

from kerascv_suite.weights.errors import WeightsError

CATALOG_ENV = "KCV_WEIGHTS_CATALOG"
DEFAULT_ALIAS = "imagenet"
SOURCES = ("keras.applications", "torchvision")
FORMATS = ("keras_h5", "torch_state_dict")
HASH_ALGORITHMS = ("md5", "sha256")
# A class-name list shipped beside this module, per `classes` value.
CLASS_FILES = {"imagenet1k": "imagenet_classes.txt", "coco91": "coco_categories.txt"}
MIN_HASH_PREFIX = 8


@dataclasses.dataclass(frozen=True)
class WeightsEntry:
    """One catalog entry (see `catalog.yaml` for where each value comes from).

    Attributes:
        name: catalog name, e.g. `"resnet18.tv_in1k"`.
        model: registry name of the model the weights fit.
        source: `"keras.applications"` or `"torchvision"`.
        url: the published file.
        hash_algorithm: `"md5"` or `"sha256"`.
        hash: the full hex digest, or a prefix of at least 8 hex digits (torchvision publishes
            the sha256 prefix in its file names).
        size_mb: published file size in MB.
        license: license of the weights.
        format: `"keras_h5"` (loads as it is) or `"torch_state_dict"` (converted).
        preprocessing: the `ImagePreprocessing` mode the weights were trained with.
        input_shape: `(height, width, channels)` the weights were trained at.
        num_classes: classes of the checkpoint's head.
        classes: key of a shipped class-name list (`CLASS_FILES`).
        metric: `{"dataset", "top1", "top5", "citation"}` as published.
        default: whether `weights="imagenet"` picks this entry for `model`.
        converter: the torchvision layout (`"vgg"`, `"squeezenet"`, `"resnet"`) for state dicts.
        bn_epsilon: BatchNormalization epsilon of the checkpoint, or None to keep the model's.
    """

    name: str
    model: str
    source: str
    url: str
    hash_algorithm: str
    hash: str
    size_mb: float
    license: str
    format: str
    preprocessing: str
    input_shape: tuple
    num_classes: int
    classes: str
    metric: dict
    default: bool = False
    converter: str | None = None
    bn_epsilon: float | None = None

    @property
    def file_name(self) -> str:
        """The published file's name (the last part of `url`)."""
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    @property
    def class_names(self) -> list[str]:
        """The checkpoint's class names, index = class id."""
        return class_names(self.classes)

    def builder_args(self) -> dict:
        """Builder arguments of the model exactly as the checkpoint was trained."""
        return {"input_shape": tuple(self.input_shape), "num_classes": self.num_classes,
                "preprocessing": self.preprocessing, "include_top": True}


def parse_entry(raw: dict, origin: str) -> WeightsEntry:
    """A `WeightsEntry` from one YAML mapping; errors name `origin` and the entry."""
    fields = {f.name for f in dataclasses.fields(WeightsEntry)}
    label = f"{origin}: entry {raw.get('name', '?')!r}"
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise WeightsError(f"{label} has unknown fields {unknown}; the fields are "
                           f"{sorted(fields)}.")
    try:
        entry = WeightsEntry(**{**raw, "input_shape": tuple(raw["input_shape"])})
    except (KeyError, TypeError) as e:
        raise WeightsError(f"{label} is incomplete: {e}") from None
    checks = (
        (entry.source in SOURCES, f"source must be one of {SOURCES}"),
        (entry.format in FORMATS, f"format must be one of {FORMATS}"),
        (entry.hash_algorithm in HASH_ALGORITHMS,
         f"hash_algorithm must be one of {HASH_ALGORITHMS}"),
        (len(entry.hash) >= MIN_HASH_PREFIX and all(c in "0123456789abcdef" for c in entry.hash),
         f"hash must be at least {MIN_HASH_PREFIX} lower-case hex digits"),
        (entry.classes in CLASS_FILES, f"classes must be one of {tuple(CLASS_FILES)}"),
        (entry.format != "torch_state_dict" or entry.converter,
         "a torch_state_dict entry needs a converter"),
    )
    for ok, message in checks:
        if not ok:
            raise WeightsError(f"{label}: {message}. Received: {raw!r}")
    return entry


def read_catalog(path) -> list[WeightsEntry]:
    """The entries of a catalog YAML file (`{"entries": [...]}`)."""
    with open(path, encoding="utf-8") as f:
        document = yaml.safe_load(f) or {}
    if not isinstance(document.get("entries"), list):
        raise WeightsError(f"{path}: a weights catalog is a mapping with an `entries` list.")
    return [parse_entry(raw, str(path)) for raw in document["entries"]]


@functools.lru_cache(maxsize=None)
def _shipped_entries() -> tuple[WeightsEntry, ...]:
    # The shipped catalog is every `catalog*.yaml` beside this module, read in name order
    # (`catalog.yaml`: classifiers; `catalog_<task>.yaml`: detectors and segmenters).
    files = sorted(f for f in resources.files(__package__).iterdir()
                   if f.name.startswith("catalog") and f.name.endswith(".yaml"))
    found = []
    for file in files:
        with resources.as_file(file) as path:
            found.extend(read_catalog(path))
    return tuple(found)


def entries() -> dict[str, WeightsEntry]:
    """All entries by name: the shipped catalog plus `$KCV_WEIGHTS_CATALOG`'s (which win)."""
    table = {e.name: e for e in _shipped_entries()}
    extra = os.environ.get(CATALOG_ENV)
    if extra:
        if not os.path.isfile(extra):
            raise WeightsError(f"${CATALOG_ENV} names no file. Received: {extra!r}")
        table.update({e.name: e for e in read_catalog(extra)})
    return table


def list_entries(pattern: str | None = None, model: str | None = None) -> list[WeightsEntry]:
    """Entries sorted by name, filtered by a glob `pattern` (on the name or the model)."""
    found = [
        e for e in entries().values()
        if (pattern is None or fnmatch.fnmatch(e.name, pattern) or fnmatch.fnmatch(e.model, pattern))
        and (model is None or e.model == model)
    ]
    return sorted(found, key=lambda e: e.name)


def get_entry(name: str) -> WeightsEntry:
    """The entry named `name`, with close matches on a miss."""
    table = entries()
    if name in table:
        return table[name]
    import difflib

    close = difflib.get_close_matches(name, list(table), n=3)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise WeightsError(f"No weights named {name!r} in the catalog.{hint} See `kcv weights "
                       f"list`. Received: weights={name!r}")


def default_entry(model: str) -> WeightsEntry:
    """The entry `weights="imagenet"` selects for registry model `model`."""
    defaults = [e for e in entries().values() if e.model == model and e.default]
    if not defaults:
        available = sorted({e.model for e in entries().values() if e.default})
        raise WeightsError(f"Model {model!r} has no default pretrained weights; models with "
                           f"them: {', '.join(available)}. Received: weights={DEFAULT_ALIAS!r}")
    # An extra catalog's default replaces the shipped one.
    return defaults[-1]


def is_catalog_weights(weights) -> bool:
    """Whether `weights` names catalog weights (`"imagenet"` or an entry) rather than a file."""
    if not isinstance(weights, str) or os.path.exists(weights):
        return False
    return weights == DEFAULT_ALIAS or weights in entries()


def resolve_entry(model: str, weights: str) -> WeightsEntry:
    """The entry that `weights` (`"imagenet"` or an entry name) selects for `model`.

    Raises:
        WeightsError: no such entry, or an entry made for another model.
    """
    entry = default_entry(model) if weights == DEFAULT_ALIAS else get_entry(weights)
    if entry.model != model:
        raise WeightsError(f"Weights {entry.name!r} fit model {entry.model!r}, not {model!r}. "
                           f"Received: weights={weights!r}")
    return entry


def class_names(key: str) -> list[str]:
    """A shipped class-name list: `"imagenet1k"` (1000 names) or `"coco91"` (torchvision's 91
    COCO category ids, `"__background__"` at 0 and `"N/A"` for the unused ids)."""
    if key not in CLASS_FILES:
        raise WeightsError(f"classes must be one of {tuple(CLASS_FILES)}. Received: {key!r}")
    return list(_read_class_file(CLASS_FILES[key]))


@functools.lru_cache(maxsize=None)
def _read_class_file(file_name) -> tuple[str, ...]:
    text = (resources.files(__package__) / file_name).read_text(encoding="utf-8")
    return tuple(text.splitlines())
