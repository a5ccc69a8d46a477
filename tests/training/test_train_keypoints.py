"""The keypoint pipeline's parts: object crops, targets, the stacked loss, PCK evaluation.

The whole run (train, resume, MLflow, register) is tested through the CLI in
tests/apps/test_train_keypoints_cmd.py.
"""

import numpy as np
import pytest

from kerascv_suite.data import make_shapes
from kerascv_suite.metrics.keypoints import box_normalizer, gaussian_heatmaps
from kerascv_suite.pipelines import train_keypoints as kp

TINY = dict(epochs=1, shapes_count=16, image_size=16, batch_size=8, workers=0)


def test_object_crops_keep_objects_with_corners():
    shapes = make_shapes(12, 64, seed=3)
    crops = kp.ObjectCrops(shapes)
    expected = sum(int((shapes[i]["classes"] != 0).sum()) for i in range(12))  # 0 = circle
    assert len(crops) == expected > 0
    for index in range(len(crops)):
        sample = crops[index]
        assert sample["boxes"].shape == (1, 4) and sample["keypoints"].shape == (1, 4, 3)
        # Squares label 4 corners, triangles 3 (the 4th point is unlabelled).
        assert int((sample["keypoints"][0, :, 2] > 0).sum()) in (3, 4)
    assert crops.class_names == ["corner"]


def test_eval_crop_centres_and_scales_the_box():
    image = np.zeros((100, 100, 3), np.uint8)
    image[40, 20] = 255  # continuous centre (20.5, 40.5)
    sample = {"image": image, "boxes": np.array([[10, 20, 30, 60]], np.float32),
              "keypoints": np.array([[[30, 20, 2], [20.5, 40.5, 2], [0, 0, 0], [99, 5, 2]]],
                                    np.float32)}
    out = kp.TopDownCrop(64, margin=1.25)(sample)
    # Longer side 40 -> crop side 50 -> scale 64 / 50 = 1.28; centre (20, 40) -> (32, 32).
    np.testing.assert_allclose(out["boxes"][0], [32 - 12.8, 32 - 25.6, 32 + 12.8, 32 + 25.6],
                               atol=1e-4)
    np.testing.assert_allclose(out["keypoints"][0, 0], [32 + 12.8, 32 - 25.6, 2], atol=1e-4)
    np.testing.assert_allclose(out["keypoints"][0, 1, :2], [32.64, 32.64], atol=1e-4)
    # (99, 5) falls outside the crop: no longer labelled.
    assert out["keypoints"][0, 3, 2] == 0 and out["keypoints"][0, 2, 2] == 0
    # The bright pixel lands in the crop pixel covering (32.64, 32.64).
    assert np.unravel_index(out["image"][..., 0].argmax(), (64, 64)) == (32, 32)


def test_train_crop_is_a_similarity_within_the_papers_scale_range():
    sample = kp.ObjectCrops(make_shapes(4, 64, seed=1))[0]
    crop = kp.TopDownCrop(64, margin=1.25, train=True)
    before = sample["keypoints"][0, :3, :2]
    side = 1.25 * box_normalizer(sample["boxes"])[0]
    for seed in range(5):
        after = crop(sample, seed=seed)["keypoints"][0, :3, :2]
        ratios = [np.linalg.norm(after[i] - after[j]) / np.linalg.norm(before[i] - before[j])
                  for i, j in ((0, 1), (1, 2), (0, 2))]
        np.testing.assert_allclose(ratios, ratios[0], rtol=1e-4)
        # Scale 64 / (side * factor), factor in 0.75..1.25 (Newell et al., section 3.3).
        assert 64 / (side * 1.25) - 1e-4 <= ratios[0] <= 64 / (side * 0.75) + 1e-4


class _Oracle:
    """A stand-in model whose last stack returns the true heatmaps, shifted by `shift`
    cells."""

    def __init__(self, keypoints, shift=0):
        self.output = {"heatmaps_1": None, "heatmaps_2": None}
        self.keypoints, self.shift = keypoints, shift

    def predict_on_batch(self, images):
        maps = gaussian_heatmaps(self.keypoints[: len(images)], (16, 16), 4, agnostic=True)
        shifted = np.zeros_like(maps)  # moved right, not wrapped around
        shifted[:, :, self.shift:] = maps[:, :, : maps.shape[2] - self.shift]
        return {"heatmaps_1": 0 * maps, "heatmaps_2": shifted}


def test_evaluation_of_true_heatmaps_is_perfect():
    crops = kp.ObjectCrops(make_shapes(6, 128, seed=2))
    crop = kp.TopDownCrop(64)
    samples = [crop(crops[i]) for i in range(len(crops))]
    batch = {"images": np.stack([s["image"] for s in samples]),
             "keypoints": np.stack([s["keypoints"] for s in samples]),
             "boxes": np.stack([s["boxes"] for s in samples])}
    scores, drawn = kp.evaluate_pck(_Oracle(batch["keypoints"]), [batch], keep=2)
    # Decoding is within a quarter cell (1 px at stride 4) per axis, and the thresholds are
    # at least 0.05 * 64 / 1.25 = 2.56 px.
    assert scores == {0.05: 1.0, 0.1: 1.0, 0.2: 1.0}
    assert len(drawn) == 2 and kp.draw_sample(*drawn[0]).shape == (256, 512, 3)
    # Shifted 3 cells (12 px) right: beyond 0.1 * 51.2 = 5.1 px, nothing is correct.
    scores, _ = kp.evaluate_pck(_Oracle(batch["keypoints"], shift=3), [batch])
    assert scores[0.1] == 0.0


def test_config_rejects_what_it_cannot_train():
    with pytest.raises(ValueError, match="shapes"):
        kp.KeypointConfig(data="./coco")
    with pytest.raises(ValueError, match="augment"):
        kp.KeypointConfig(augment="segmentation")
    with pytest.raises(ValueError, match="multiple of 4"):
        kp.KeypointConfig(image_size=30)


def test_every_stack_is_supervised_with_the_same_targets(tmp_path, monkeypatch):
    import keras

    from kerascv_suite.models import build

    monkeypatch.chdir(tmp_path)
    config = kp.load_config(None, **TINY)
    # The recipe applies (its sigma 2) under the TINY overrides.
    assert config.recipe == "hourglass_shapes.yaml" and config.sigma == 2.0
    data = kp.load_data(config)
    try:
        model = build("hourglass", num_classes=1, input_shape=data.input_shape, num_stacks=2,
                      filters=8, depth=1)
        names = kp.heatmap_outputs(model)
        assert names == ["heatmaps_1", "heatmaps_2"]
        kp.compile_keypoints(model, config, 0.01, 1, 1)
        images, targets = next(iter(data.fit_dataset(data.train_loader, names)))
        assert sorted(targets) == names and images.shape[1:] == (16, 16, 3)
        batch = next(data.train_loader.iter_epoch(0))
        expected = gaussian_heatmaps(batch["keypoints"], (4, 4), 4, sigma=2.0, agnostic=True)
        for name in names:
            np.testing.assert_allclose(keras.ops.convert_to_numpy(targets[name]), expected)
        predicted = model(batch["images"])
        loss = model.compute_loss(y=targets, y_pred=predicted)
        # The paper's intermediate supervision: the MSE of every stack, equally weighted.
        by_hand = sum(np.mean((keras.ops.convert_to_numpy(predicted[n]) - expected) ** 2)
                      for n in names)
        assert float(keras.ops.convert_to_numpy(loss)) == pytest.approx(by_hand, rel=1e-4)
    finally:
        data.close()
