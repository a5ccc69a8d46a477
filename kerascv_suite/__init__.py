"""kerascv-suite: classic convolutional networks on Keras 3 (TensorFlow, JAX, PyTorch).

Importing the top-level package is cheap: it does not import Keras. Import
`kerascv_suite.models` (or call `kerascv_suite.models.build`) to get the builders.
"""

__version__ = "0.1.0"
