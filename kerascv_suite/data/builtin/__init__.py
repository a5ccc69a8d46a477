"""Datasets that need no download: `load_digits` (real) and `make_shapes` (synthetic)."""
