"""DecoupledNet (Hong, Noh, Han, NIPS 2015): the class-specific maps are the class scores'
gradients, the segmentation loss leaves the classifier alone, images without a mask only
train the classifier, and the inference output keeps only the identified classes. Build,
predict, one fit step and the `.keras` round trip run for every backend in test_registry.py."""

import keras
import numpy as np
import pytest
from keras import ops

from kerascv_suite import models
from kerascv_suite.models.segmentation.decouplednet import (ClassifierSaliency,
                                                            DecoupledScores, decoupled_loss)


def class_score_gradient(layer, features, label):
    """d sum_b logits[b, label] / d features, by the backend's own autodiff."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(features)
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = tf.reduce_sum(layer(x)[0][:, label])
        return tape.gradient(score, x).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda v: layer(v)[0][:, label].sum())(features))
    import torch

    x = torch.tensor(features, requires_grad=True)
    layer(x)[0][:, label].sum().backward()
    return x.grad.numpy()


@pytest.mark.backend
def test_saliency_is_each_class_scores_gradient():
    # Sec. 4.3: the class-specific activation map is d y_l / d f_spat (Simonyan et al.).
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2, 3, 3, 4)).astype("float32")
    layer = ClassifierSaliency((6, 5), 3)
    saliency = ops.convert_to_numpy(layer(features)[1])
    assert saliency.shape == (2, 3, 3, 3, 4)
    for label in range(3):
        np.testing.assert_allclose(saliency[:, label],
                                   class_score_gradient(layer, features, label),
                                   rtol=1e-5, atol=1e-6)


def test_scores_keep_only_identified_classes():
    # Sec. 6: class 1 (p 0.88) is identified, class 2 (p 0.12) is not. Pixel 0: p_1 0.95,
    # p_2 (0.99, not identified) -> 0: class 1. Pixel 1: p_1 0.047 -> background 0.953.
    logits = np.array([[2.0, -2.0]], "float32")
    masks = np.array([[[[3.0, 5.0], [-3.0, 5.0]]]], "float32")  # (1, 1, 2, 2)
    scores = ops.convert_to_numpy(DecoupledScores(0.5)([logits, masks]))[0, 0]
    p1 = 1 / (1 + np.exp(-np.array([3.0, -3.0])))
    expected = np.stack([1 - p1, p1, [0, 0]], -1)
    np.testing.assert_allclose(scores, expected / expected.sum(-1, keepdims=True), atol=1e-6)
    assert scores.argmax(-1).tolist() == [1, 0]


def test_decoupled_loss_by_hand():
    # Image 0 has a mask holding class 1 (pixel 0) and a void pixel; image 1 has no mask
    # (all 255): only image 0's class-1 map at its two non-void pixels enters the mask term.
    masks = np.array([[[1, 0, 255]], [[255, 255, 255]]], "uint8")  # (2, 1, 3)
    labels = np.array([[1, 0], [0, 1]], "float32")
    class_logits = np.array([[0.5, -1.0], [2.0, 0.0]], "float32")
    mask_logits = np.random.default_rng(1).normal(size=(2, 1, 3, 2)).astype("float32")
    heads = {"class_logits": class_logits, "mask_logits": mask_logits}
    classification, segmentation = (float(v) for v in decoupled_loss(
        {"masks": masks, "labels": labels}, heads))

    def bce(z, x):
        return -(z * np.log(1 / (1 + np.exp(-x))) + (1 - z) * np.log(1 / (1 + np.exp(x))))

    assert classification == pytest.approx(bce(labels, class_logits).mean(), rel=1e-5)
    x = mask_logits[0, 0, :2, 0]
    assert segmentation == pytest.approx(bce(np.array([1.0, 0.0]), x).mean(), rel=1e-5)


@pytest.mark.backend
def test_mask_loss_leaves_the_classifier_and_unmasked_images_only_train_it():
    model = models.build("decouplednet", input_shape=(16, 16, 3), num_classes=3, width=0.0625,
                         blocks=1, fc_units=(32, 32))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    masks = rng.integers(0, 3, (4, 16, 16)).astype("uint8")
    labels = np.ones((4, 2), "float32")
    start = model.get_weights()
    model.compile(optimizer=keras.optimizers.SGD(0.1))  # stateless: one compile serves both

    def one_step(y_masks):
        model.set_weights(start)
        model.train_on_batch(x, {"masks": y_masks, "labels": labels})
        return {w.path: ops.convert_to_numpy(w) for w in model.trainable_weights}

    with_masks = one_step(masks)
    without = one_step(np.full_like(masks, 255))
    initial = {w.path: v for w, v in zip(model.weights, start)}
    classifier = [p for p in with_masks if p.startswith(("block", "classifier"))]
    decoder = [p for p in with_masks if p.startswith(("bridge", "deconv", "figure_ground"))]
    assert classifier and decoder
    for path in classifier:  # the mask loss does not reach the classification network
        np.testing.assert_allclose(with_masks[path], without[path], rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(without[p], initial[p]) for p in classifier)
    for path in decoder:  # no mask in the batch: the segmentation network is untouched
        np.testing.assert_array_equal(without[path], initial[path])
    assert any(not np.allclose(with_masks[p], initial[p]) for p in decoder)
