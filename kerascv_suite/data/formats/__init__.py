"""One module per on-disk format, each with a `read_*` and a `write_*` function."""
