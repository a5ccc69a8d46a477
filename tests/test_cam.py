"""Class activation maps (Zhou et al. 2016) against a direct NumPy computation."""

import cv2
import keras
import numpy as np
import pytest

from kerascv_suite.analysis import (class_activation_map, explain_images, find_cam_head,
                                    overlay_heatmap)
from kerascv_suite.models import build, get_spec


def _gap_model(dense=True, stride=2, classes=3):
    """image 16x16x3 -> conv (stride) -> ReLU -> GAP -> Dense softmax (or channels = classes)."""
    inputs = keras.Input((16, 16, 3))
    channels = 6 if dense else classes
    x = keras.layers.Conv2D(channels, 3, strides=stride, padding="same", name="last_conv")(inputs)
    x = keras.layers.Activation("relu", name="last_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dense:
        x = keras.layers.Dropout(0.5)(x)
        x = keras.layers.Dense(classes, activation="softmax", name="predictions")(x)
    else:
        x = keras.layers.Activation("softmax", name="predictions")(x)
    return keras.Model(inputs, x)


def _reference(model, images, class_index):
    """Zhou et al. eq. (1) in NumPy: M_c = sum_k w_k^c f_k, bilinear upsampling, 0..1."""
    features = keras.ops.convert_to_numpy(
        keras.Model(model.input, model.get_layer("last_relu").output)(images)
    )
    if any(isinstance(layer, keras.layers.Dense) for layer in model.layers):
        kernel = keras.ops.convert_to_numpy(model.get_layer("predictions").kernel)
        raw = np.einsum("bhwk,kc->bhwc", features, kernel)
    else:
        raw = features
    maps = []
    for b, c in enumerate(class_index):
        # cv2's INTER_LINEAR samples at pixel centres, as keras.ops.image.resize does.
        m = cv2.resize(raw[b, ..., c], images.shape[2:0:-1], interpolation=cv2.INTER_LINEAR)
        maps.append((m - m.min()) / (m.max() - m.min()))
    return np.stack(maps)


def _images(n=2):
    return np.random.default_rng(0).uniform(0, 255, (n, 16, 16, 3)).astype("float32")


@pytest.mark.backend
@pytest.mark.parametrize("dense", [True, False], ids=["gap_dense", "gap_class_channels"])
def test_cam_matches_numpy(dense):
    model = _gap_model(dense=dense)
    images = _images()
    maps, classes = class_activation_map(model, images, return_class_index=True)
    expected_classes = np.argmax(keras.ops.convert_to_numpy(model(images)), axis=-1)
    np.testing.assert_array_equal(classes, expected_classes)
    assert maps.shape == (2, 16, 16) and maps.dtype == np.float32
    np.testing.assert_allclose(maps, _reference(model, images, classes), atol=1e-4)
    assert maps.min() == 0.0 and maps.max() == pytest.approx(1.0)


@pytest.mark.backend
def test_cam_for_a_chosen_class_and_a_single_image():
    model = _gap_model(stride=1)
    images = _images(1)
    for c in range(3):
        maps = class_activation_map(model, images[0], class_index=c)
        np.testing.assert_allclose(maps, _reference(model, images, [c]), atol=1e-4)
    with pytest.raises(ValueError, match="class_index"):
        class_activation_map(model, images, class_index=3)


@pytest.mark.backend
def test_models_without_gap_head_are_refused():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(2, activation="softmax", name="fc")(x)
    with pytest.raises(ValueError, match="no global-average-pooling head.*flatten"):
        class_activation_map(keras.Model(inputs, x), np.zeros((1, 8, 8, 3)))
    with pytest.raises(ValueError, match="'lenet5' has no global-average-pooling head"):
        find_cam_head(build("lenet5"))


@pytest.mark.parametrize(
    "name, features, classifier",
    [
        # Layer names of keras.applications ResNet and of the reference GoogLeNet/NiN/
        # SqueezeNet definitions (the classifier of NiN and SqueezeNet is a conv per class).
        ("resnet18", "conv5_block2_out", "predictions"),
        ("squeezenet1_1", "relu_conv10", None),
        ("nin", "mlpconv4_cccp2", None),
        ("googlenet", "inception_5b_output", "predictions"),
    ],
)
def test_registry_models_have_a_cam_head(name, features, classifier):
    overrides = dict(get_spec(name).test_overrides)
    overrides["input_shape"] = (96, 96, 3) if name != "nin" else (99, 99, 3)
    model = build(name, **overrides)
    head = find_cam_head(model)
    assert head.features.name == features
    assert (head.classifier.name if head.classifier else None) == classifier
    images = np.random.default_rng(0).uniform(0, 255, (1, *overrides["input_shape"]))
    maps = class_activation_map(model, images)
    assert maps.shape == (1, *overrides["input_shape"][:2])
    assert 0.0 <= maps.min() and maps.max() <= 1.0


def _square_data(n, rng):
    """Class 1: a bright 5x5 square at a random place on dark noise; class 0: noise only."""
    images = rng.uniform(0, 60, (n, 16, 16, 3)).astype("float32")
    labels = rng.integers(0, 2, n)
    corners = rng.integers(0, 12, (n, 2))
    for image, label, (r, c) in zip(images, labels, corners):
        if label:
            image[r:r + 5, c:c + 5] = 255.0
    return images, labels, corners


@pytest.mark.slow
def test_cam_peak_lands_on_the_evidence():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="last_conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    images, labels, _ = _square_data(512, rng)
    model.fit(images, labels, batch_size=32, epochs=4, verbose=0)
    test, test_labels, corners = _square_data(64, rng)
    squares = test[test_labels == 1]
    corners = corners[test_labels == 1]
    assert model.evaluate(test, test_labels, verbose=0)[1] > 0.9
    maps = class_activation_map(model, squares, class_index=1)
    hits = 0
    for cam, (r, c) in zip(maps, corners):
        pr, pc = np.unravel_index(np.argmax(cam), cam.shape)
        hits += r - 1 <= pr <= r + 5 and c - 1 <= pc <= c + 5  # the square, 1 px margin
    assert hits / len(maps) > 0.9


def test_overlay_is_an_rgb_blend_of_the_heatmap():
    image = np.full((20, 30, 3), 100, np.uint8)
    cam = np.zeros((5, 5), np.float32)
    cam[0, 0] = 1.0
    out = overlay_heatmap(image, cam, alpha=0.5)
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    # JET maps 1.0 to dark red and 0.0 to dark blue (OpenCV colormap table).
    assert out[0, 0, 0] > out[0, 0, 2] and out[-1, -1, 2] > out[-1, -1, 0]
    gray = overlay_heatmap(image[..., :1], cam)
    assert gray.shape == (20, 30, 3)


class _CallCounter(keras.layers.Layer):
    """The identity, counting its calls: one per forward pass of a model built on it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0

    def call(self, x):
        self.calls += 1
        return x


def _counted_gap_model(shape=(16, 16, 3)):
    inputs = keras.Input(shape)
    counter = _CallCounter(name="counter")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="last_conv")(counter(inputs))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x)), counter


@pytest.mark.backend
def test_explain_images_predicts_once_per_batch_and_matches_the_parts():
    model, counter = _counted_gap_model()
    rng = np.random.default_rng(0)
    sizes = [(16, 16), (40, 24), (16, 16), (9, 33), (16, 16)]
    images = [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for hw in sizes]
    counter.calls = 0
    results = list(explain_images(model, iter(images), alpha=0.4, batch_size=2))
    assert counter.calls == 3  # 5 images in batches of 2; the maps and scores in one pass
    assert len(results) == 5
    for image, result in zip(images, results):
        resized = cv2.resize(image, (16, 16), interpolation=cv2.INTER_AREA)[None].astype("float32")
        scores = keras.ops.convert_to_numpy(model(resized))[0]
        cam, explained = class_activation_map(model, resized, return_class_index=True)
        assert (result.class_index, result.top_class) == (explained[0], scores.argmax())
        assert result.score == pytest.approx(float(scores[explained[0]]), abs=1e-6)
        np.testing.assert_allclose(result.cam, cam[0], atol=1e-5)
        assert result.overlay.shape == image.shape
        np.testing.assert_allclose(result.overlay, overlay_heatmap(image, cam[0], alpha=0.4),
                                   atol=1)
    chosen = list(explain_images(model, images[:2], class_index=2))
    assert [r.class_index for r in chosen] == [2, 2]
    with pytest.raises(ValueError, match="Received: class_index=3"):
        explain_images(model, images, class_index=3)  # at the call, no image read


@pytest.mark.backend
def test_explain_images_batches_same_size_images_for_any_size_models():
    model, counter = _counted_gap_model((None, None, 3))
    rng = np.random.default_rng(1)
    sizes = [(12, 12), (12, 12), (20, 8), (12, 12)]
    images = [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for hw in sizes]
    counter.calls = 0
    results = list(explain_images(model, images, batch_size=8))
    assert counter.calls == 3  # [12x12, 12x12], [20x8], [12x12]: each image keeps its size
    assert [r.cam.shape for r in results] == sizes
    with pytest.raises(ValueError, match="no global-average-pooling head"):
        inputs = keras.Input((8, 8, 3))
        flat = keras.layers.Flatten()(inputs)
        explain_images(keras.Model(inputs, keras.layers.Dense(2)(flat)), images)
