"""Top-down keypoint crops: object samples, crop geometry and its inverse."""

import numpy as np

from kerascv_suite.data import make_shapes
from kerascv_suite.data.keypoint_crops import (ObjectCrops, TopDownCrop, crop_points,
                                               uncrop_points)
from kerascv_suite.metrics.keypoints import box_normalizer


def test_object_crops_keep_labelled_objects_of_the_given_classes():
    shapes = make_shapes(12, 64, seed=3)
    # "hexagon" is not a shapes class: ignored, not an error.
    crops = ObjectCrops(shapes, ("square", "triangle", "hexagon"), class_names=("corner",))
    circle = shapes.class_names.index("circle")
    expected = sum(int((shapes[i]["classes"] != circle).sum()) for i in range(12))
    assert len(crops) == expected > 0
    for index in range(len(crops)):
        sample = crops[index]
        assert sample["boxes"].shape == (1, 4) and sample["keypoints"].shape == (1, 4, 3)
        assert sample["classes"].tolist() == [0]
        # Squares label 4 corners, triangles 3 (the 4th point is unlabelled).
        assert int((sample["keypoints"][0, :, 2] > 0).sum()) in (3, 4)
    assert crops.class_names == ["corner"] and crops.num_classes == 1
    squares = ObjectCrops(shapes, ("square",))
    assert 0 < len(squares) < len(crops)
    assert all((squares[i]["keypoints"][0, :, 2] > 0).sum() == 4 for i in range(len(squares)))


def test_eval_crop_centres_and_scales_the_box():
    image = np.zeros((100, 100, 3), np.uint8)
    image[40, 20] = 255  # continuous centre (20.5, 40.5)
    sample = {"image": image, "boxes": np.array([[10, 20, 30, 60]], np.float32),
              "keypoints": np.array([[[30, 20, 2], [20.5, 40.5, 2], [0, 0, 0], [99, 5, 2]]],
                                    np.float32)}
    out = TopDownCrop(64, margin=1.25)(sample)
    # Longer side 40 -> crop side 50 -> scale 64 / 50 = 1.28; centre (20, 40) -> (32, 32).
    np.testing.assert_allclose(out["boxes"][0], [32 - 12.8, 32 - 25.6, 32 + 12.8, 32 + 25.6],
                               atol=1e-4)
    np.testing.assert_allclose(out["keypoints"][0, 0], [32 + 12.8, 32 - 25.6, 2], atol=1e-4)
    np.testing.assert_allclose(out["keypoints"][0, 1, :2], [32.64, 32.64], atol=1e-4)
    # (99, 5) falls outside the crop: no longer labelled.
    assert out["keypoints"][0, 3, 2] == 0 and out["keypoints"][0, 2, 2] == 0
    # The bright pixel lands in the crop pixel covering (32.64, 32.64).
    assert np.unravel_index(out["image"][..., 0].argmax(), (64, 64)) == (32, 32)
    assert out["image"].shape == (64, 64, 3) and out["image"].dtype == np.uint8


def test_train_crop_is_a_similarity_within_the_papers_scale_range():
    sample = ObjectCrops(make_shapes(4, 64, seed=1), ("square", "triangle"))[0]
    crop = TopDownCrop(64, margin=1.25, train=True)
    before = sample["keypoints"][0, :3, :2]
    side = 1.25 * box_normalizer(sample["boxes"])[0]
    for seed in range(5):
        after = crop(sample, seed=seed)["keypoints"][0, :3, :2]
        ratios = [np.linalg.norm(after[i] - after[j]) / np.linalg.norm(before[i] - before[j])
                  for i, j in ((0, 1), (1, 2), (0, 2))]
        np.testing.assert_allclose(ratios, ratios[0], rtol=1e-4)
        # Scale 64 / (side * factor), factor in 0.75..1.25 (Newell et al., section 3.3).
        assert 64 / (side * 1.25) - 1e-4 <= ratios[0] <= 64 / (side * 0.75) + 1e-4


def test_keypoints_into_the_crop_and_back_are_the_originals():
    sample = ObjectCrops(make_shapes(6, 128, seed=4), ("square", "triangle"))[2]
    original = sample["keypoints"][0]
    labelled = original[:, 2] > 0
    crop = TopDownCrop(48, margin=1.5, train=True, rotate=30, scale=(0.75, 1.25), hflip=0.5)
    determinants = []
    for seed in range(8):
        matrix = crop.matrix(sample["boxes"][0], np.random.default_rng(seed))
        determinants.append(np.linalg.det(matrix[:, :2]))
        out = crop(sample, seed=seed)
        # The documented map is the one the crop applied...
        np.testing.assert_allclose(out["keypoints"][0, labelled, :2],
                                   crop_points(original[labelled, :2], matrix), atol=1e-4)
        # ...and mapping the crop's keypoints back gives the originals.
        back = uncrop_points(out["keypoints"][0, :, :2], matrix)
        np.testing.assert_allclose(back[labelled], original[labelled, :2], atol=1e-3)
    # The seeds cover flipped (negative determinant) and unflipped crops.
    assert min(determinants) < 0 < max(determinants)
    # The centred crop maps the box centre to the crop centre.
    x0, y0, x1, y1 = sample["boxes"][0]
    centre = crop_points(np.array([(x0 + x1) / 2, (y0 + y1) / 2]), TopDownCrop(48).matrix(
        sample["boxes"][0]))
    np.testing.assert_allclose(centre, [24, 24], atol=1e-6)


def test_grayscale_crops_keep_their_channel():
    sample = {"image": np.full((40, 50), 7, np.uint8), "boxes": np.array([[5, 5, 25, 35.0]]),
              "keypoints": np.array([[[10, 10, 2]]], np.float32)}
    out = TopDownCrop(32)(sample)
    assert out["image"].shape == (32, 32, 1) and out["image"][16, 16, 0] == 7

