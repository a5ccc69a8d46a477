"""The error the weights package raises."""


class WeightsError(ValueError):
    """Pretrained weights that cannot be found, fetched, verified or converted.

    A `ValueError`, so callers that turn bad input into one-line errors handle it too; the
    message names the entry, the URL or file and what to do.
    """
