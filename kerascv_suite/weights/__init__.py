"""Pretrained weights by name: the catalog, download + verify + cache, converters.

Example:
    >>> from kerascv_suite import weights
    >>> [e.name for e in weights.list_entries("resnet*")]
    ['resnet101.keras_in1k', 'resnet152.keras_in1k', 'resnet18.tv_in1k', 'resnet50.keras_in1k']
    >>> path = weights.fetch(weights.get_entry("resnet18.tv_in1k"))  # downloads once

Models load them through the registry: `models.build("resnet18", weights="imagenet")`.
"""

from kerascv_suite.weights.catalog import (
    CATALOG_ENV,
    DEFAULT_ALIAS,
    WeightsEntry,
    class_names,
    default_entry,
    get_entry,
    is_catalog_weights,
    list_entries,
    resolve_entry,
)
from kerascv_suite.weights.download import (
    BASE_URL_ENV,
    CACHE_ENV,
    cache_dir,
    cached_path,
    converted_path,
    fetch,
    file_digest,
    is_cached,
    source_url,
)
from kerascv_suite.weights.converters import LAYOUTS, convert_state_dict
from kerascv_suite.weights.errors import WeightsError
from kerascv_suite.weights.torch_convert import read_state_dict, set_bn_epsilon

__all__ = [
    "BASE_URL_ENV",
    "CACHE_ENV",
    "CATALOG_ENV",
    "DEFAULT_ALIAS",
    "LAYOUTS",
    "WeightsEntry",
    "WeightsError",
    "cache_dir",
    "cached_path",
    "class_names",
    "convert_state_dict",
    "converted_path",
    "default_entry",
    "fetch",
    "file_digest",
    "get_entry",
    "is_cached",
    "is_catalog_weights",
    "list_entries",
    "read_state_dict",
    "resolve_entry",
    "set_bn_epsilon",
    "source_url",
]
