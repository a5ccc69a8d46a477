import numpy as np
import pytest
from keras.ops import convert_to_numpy as to_numpy

from kerascv_suite.layers import LocalResponseNormalization
from kerascv_suite.testing import run_layer_test


def numpy_lrn(a, size, alpha, beta, k, alpha_convention):
    """Krizhevsky et al. 2012, section 3.3, written out channel by channel."""
    channels = a.shape[-1]
    out = np.empty_like(a)
    scale = alpha / size if alpha_convention == "caffe" else alpha
    for c in range(channels):
        lo, hi = max(0, c - size // 2), min(channels - 1, c + size // 2)
        energy = np.sum(a[..., lo : hi + 1] ** 2, axis=-1)
        out[..., c] = a[..., c] / (k + scale * energy) ** beta
    return out


@pytest.mark.backend
def test_layer_contract():
    run_layer_test(
        LocalResponseNormalization,
        {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0},
        input_shape=(2, 4, 4, 8),
        expected_output_shape=(2, 4, 4, 8),
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
    )


@pytest.mark.backend
@pytest.mark.parametrize("alpha_convention", ["paper", "caffe"])
@pytest.mark.parametrize("size", [1, 3, 5])
def test_matches_numpy_reference(alpha_convention, size):
    rng = np.random.default_rng(0)
    # Large activations and a large alpha make the normalization far from the identity.
    x = rng.normal(0.0, 20.0, size=(2, 3, 3, 7)).astype("float32")
    args = dict(size=size, alpha=1e-2, beta=0.75, k=2.0, alpha_convention=alpha_convention)
    actual = to_numpy(LocalResponseNormalization(**args)(x))
    expected = numpy_lrn(x, **args)
    assert not np.allclose(expected, x / 2.0**0.75, rtol=1e-2)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.backend
def test_conventions_differ_by_alpha_over_size():
    x = np.random.default_rng(1).normal(0.0, 30.0, size=(1, 2, 2, 6)).astype("float32")
    caffe = LocalResponseNormalization(size=5, alpha=5e-3, alpha_convention="caffe")(x)
    paper = LocalResponseNormalization(size=5, alpha=1e-3, alpha_convention="paper")(x)
    np.testing.assert_allclose(to_numpy(caffe), to_numpy(paper), rtol=1e-6)


def test_paper_convention_matches_tensorflow():
    import tensorflow as tf

    x = np.random.default_rng(2).normal(0.0, 20.0, size=(2, 5, 5, 9)).astype("float32")
    expected = tf.nn.local_response_normalization(
        x, depth_radius=2, bias=2.0, alpha=1e-3, beta=0.75
    ).numpy()
    actual = LocalResponseNormalization(size=5, alpha=1e-3, beta=0.75, k=2.0)(x)
    np.testing.assert_allclose(to_numpy(actual), expected, rtol=1e-5, atol=1e-6)


def test_caffe_convention_matches_torch():
    import torch

    x = np.random.default_rng(3).normal(0.0, 20.0, size=(2, 5, 5, 9)).astype("float32")
    # torch.nn.LocalResponseNorm is channels-first and divides alpha by size, like Caffe.
    expected = torch.nn.functional.local_response_norm(
        torch.from_numpy(x).permute(0, 3, 1, 2), size=5, alpha=1e-2, beta=0.75, k=1.0
    ).permute(0, 2, 3, 1).numpy()
    layer = LocalResponseNormalization(
        size=5, alpha=1e-2, beta=0.75, k=1.0, alpha_convention="caffe"
    )
    np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-6)


def test_macs():
    # Per element: one square, `size` additions, one scaling.
    assert LocalResponseNormalization(size=5).macs((4, 4, 8)) == 4 * 4 * 8 * 7


@pytest.mark.parametrize(
    "kwargs", [{"size": 4}, {"size": 0}, {"alpha_convention": "torch"}]
)
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="Received"):
        LocalResponseNormalization(**kwargs)
