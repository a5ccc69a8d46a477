"""Every torchvision state-dict converter by layout name (a catalog entry's `converter`).

`torch_convert.LAYOUTS` (`"vgg"`, `"squeezenet"`, `"resnet"`) map layer by layer through
`torch_convert.convert_state_dict`; `CONVERTERS` adds those that adapt tensors on the way
(`"ssd300_vgg16"`: `ssd_convert.convert_ssd300_vgg16`).
"""

from kerascv_suite.weights import torch_convert
from kerascv_suite.weights.errors import WeightsError
from kerascv_suite.weights.ssd_convert import convert_ssd300_vgg16

CONVERTERS = {"ssd300_vgg16": convert_ssd300_vgg16}
LAYOUTS = (*torch_convert.LAYOUTS, *CONVERTERS)


def convert_state_dict(model, state, layout) -> list[str]:
    """Sets `model`'s weights from torchvision state dict `state` with converter `layout`
    (one of `LAYOUTS`); returns the names of the layers that received weights.

    Raises:
        WeightsError: an unknown layout, or a state dict that does not fit (see the
            converters).
    """
    if layout in CONVERTERS:
        return CONVERTERS[layout](model, state)
    if layout not in torch_convert.LAYOUTS:
        raise WeightsError(f"layout must be one of {LAYOUTS}. Received: {layout!r}")
    return torch_convert.convert_state_dict(model, state, layout)
