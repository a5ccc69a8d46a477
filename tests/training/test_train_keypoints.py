"""The keypoint task's protocol: cornered shapes objects, one "corner" channel, targets,
the stacked loss, PCK of true heatmaps on real crops, the drawn report panels.

The library pieces have their own tests (tests/data/test_keypoint_crops.py,
tests/metrics/test_keypoints.py); the whole run (train, resume, MLflow, register) is tested
through the CLI in tests/apps/test_train_keypoints_cmd.py.
"""

import numpy as np
import pytest

from kerascv_suite.data import make_shapes
from kerascv_suite.data.keypoint_crops import ObjectCrops, TopDownCrop
from kerascv_suite.metrics.keypoints import evaluate_pck, gaussian_heatmaps, heatmap_outputs
from kerascv_suite.tasks import keypoints as kp
from kerascv_suite.tasks import load_config
from kerascv_suite.visualization.keypoints import draw_keypoint_samples

TINY = dict(epochs=1, shapes_count=16, image_size=16, batch_size=8, workers=0)


def test_splits_are_the_cornered_objects_in_one_channel():
    config = kp.KeypointConfig(shapes_count=10, shapes_size=64, seed=3)
    train, val, test = kp.open_splits(config)
    shapes = make_shapes(10, 64, seed=3, split="train")
    circle = shapes.class_names.index("circle")
    assert len(train) == sum(int((shapes[i]["classes"] != circle).sum()) for i in range(10))
    assert len(val) > 0 and len(test) > 0
    for split in (train, val, test):
        assert split.class_names == ["corner"] and split.num_classes == 1
        labelled = [int((split[i]["keypoints"][0, :, 2] > 0).sum()) for i in range(len(split))]
        assert set(labelled) <= {3, 4}  # squares and triangles; circles have no corners


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
    crops = ObjectCrops(make_shapes(6, 128, seed=2), kp.CORNERED, kp.CHANNEL_NAMES)
    crop = TopDownCrop(64)
    samples = [crop(crops[i]) for i in range(len(crops))]
    batch = {"images": np.stack([s["image"] for s in samples]),
             "keypoints": np.stack([s["keypoints"] for s in samples]),
             "boxes": np.stack([s["boxes"] for s in samples])}
    scores = evaluate_pck(_Oracle(batch["keypoints"]), [batch], kp.PCK_ALPHAS, kp.STRIDE,
                          prefix="test_")
    # Decoding is within a quarter cell (1 px at stride 4) per axis, and the thresholds are
    # at least 0.05 * 64 / 1.25 = 2.56 px.
    assert scores == {"test_pck_0.05": 1.0, "test_pck": 1.0, "test_pck_0.2": 1.0}
    panels = draw_keypoint_samples(_Oracle(batch["keypoints"]), [batch], 2, kp.STRIDE)
    assert len(panels) == 2 and panels[0].shape == (256, 512, 3)
    # The panel marks the true corners in green on the 4x crop.
    x, y = batch["keypoints"][0, 0, 0, :2]
    assert tuple(panels[0][int(y * 4), int(x * 4)]) == (0, 255, 0)
    # Shifted 3 cells (12 px) right: beyond 0.1 * 51.2 = 5.1 px, nothing is correct.
    scores = evaluate_pck(_Oracle(batch["keypoints"], shift=3), [batch], stride=kp.STRIDE)
    assert scores["pck"] == 0.0


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
    config = load_config(None, model="hourglass", **TINY)
    # The recipe applies (its sigma 2) under the TINY overrides.
    assert config.recipe == "hourglass_shapes" and config.sigma == 2.0
    task = kp.KeypointTask()
    data = task.load_data(config, tmp_path, lambda *_: None)
    try:
        model = build("hourglass", num_classes=1, input_shape=data.input_shape, num_stacks=2,
                      filters=8, depth=1)
        names = heatmap_outputs(model)
        assert names == ["heatmaps_1", "heatmaps_2"]
        task.compile(model, config, 0.01, 1, 1)
        images, targets = next(iter(kp.heatmap_dataset(data.loaders["train"], names,
                                                       data.extra["heatmap_size"],
                                                       config.sigma)))
        assert sorted(targets) == names and images.shape[1:] == (16, 16, 3)
        batch = next(data.loaders["train"].iter_epoch(0))
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
