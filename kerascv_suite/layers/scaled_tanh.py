"""LeCun's scaled hyperbolic tangent, the squashing function of LeNet-5."""

import keras
from keras import ops

# LeCun et al. 1998, Appendix A: f(a) = A tanh(S a) with A = 1.7159 and S = 2/3, chosen so
# that f(1) = 1 and f(-1) = -1 and the gain is close to 1 over the normal operating range.
AMPLITUDE = 1.7159
SLOPE = 2.0 / 3.0


@keras.saving.register_keras_serializable(package="kerascv_suite")
def scaled_tanh(x):
    """Returns `1.7159 * tanh(2 x / 3)` elementwise.

    From LeCun, Bottou, Bengio and Haffner, "Gradient-based learning applied to document
    recognition" (Proc. IEEE, 1998), Appendix A. Registered as a Keras serializable, so
    `keras.layers.Activation(scaled_tanh)` survives a `.keras` save/load round trip.
    """
    return AMPLITUDE * ops.tanh(SLOPE * x)
