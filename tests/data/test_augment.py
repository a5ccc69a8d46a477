import pickle

import numpy as np
import pytest

from kerascv_suite.data.augment import (
    PRESETS,
    AugmentConfig,
    Augmenter,
    build_augmenter,
    preset,
    sample_seed,
)

HEIGHT, WIDTH = 256, 320


def _objects_sample():
    """Three rectangles; object k has class k, mask id k + 1, and keypoints at its centre
    (visible) and top-left corner (visibility 1)."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    boxes = np.array([[20, 30, 120, 110], [150, 40, 300, 200], [60, 150, 140, 240]], np.float32)
    keypoints = []
    for k, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
        mask[y0:y1, x0:x1] = k + 1
        keypoints.append([[(x0 + x1) / 2, (y0 + y1) / 2, 2], [x0, y0, 1]])
    return {
        "image": image,
        "mask": mask,
        "boxes": boxes,
        "classes": np.arange(3, dtype=np.int32),
        "keypoints": np.asarray(keypoints, np.float32),
        "label": 7,
    }


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_keep_the_sample_contract(name):
    aug = build_augmenter(name, image_size=(96, 128))
    out = aug(_objects_sample(), seed=1)
    assert out["image"].shape == (96, 128, 3) and out["image"].dtype == np.uint8
    assert out["mask"].shape == (96, 128) and out["mask"].dtype == np.uint8
    assert out["boxes"].dtype == np.float32 and out["boxes"].shape[1:] == (4,)
    assert out["classes"].dtype == np.int32
    assert len(out["classes"]) == len(out["boxes"]) == len(out["keypoints"])
    assert out["keypoints"].shape[1:] == (2, 3)
    assert out["label"] == 7


def test_eval_preset_only_resizes():
    out = build_augmenter("detection_eval", image_size=(128, 160))(_objects_sample(), seed=5)
    # Resize 320x256 -> 160x128 halves every coordinate.
    np.testing.assert_allclose(out["boxes"], _objects_sample()["boxes"] / 2, atol=1e-3)
    np.testing.assert_array_equal(out["classes"], [0, 1, 2])
    np.testing.assert_array_equal(out["mask"], _objects_sample()["mask"][::2, ::2])


def _mask_rect(mask, mask_id):
    ys, xs = np.nonzero(mask == mask_id)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


@pytest.mark.parametrize(
    "config",
    [
        preset("detection", image_size=128),
        preset("segmentation", image_size=(128, 96)),
        # Flip always, crop hard: the strongest geometric changes the presets make.
        AugmentConfig(task="detection", image_size=128, hflip=1.0, scale=(0.2, 0.5)),
    ],
    ids=["detection", "segmentation", "flip_and_crop"],
)
def test_boxes_masks_and_keypoints_stay_aligned(config):
    aug = Augmenter(config)
    sample = _objects_sample()
    kept = 0
    for seed in range(25):
        out = aug(sample, seed=seed)
        height, width = out["image"].shape[:2]
        for box, cls, kps in zip(out["boxes"], out["classes"], out["keypoints"]):
            # The box is the bounding rectangle of its object's (nearest-resized) mask
            # region, up to the 1-pixel rounding of nearest-neighbour resampling.
            np.testing.assert_allclose(box, _mask_rect(out["mask"], cls + 1), atol=1.5)
            for (x, y, visibility), original in zip(kps, (2, 1)):
                inside = 0 <= x < width and 0 <= y < height
                assert visibility == (original if inside else 0)
            centre = kps[0]
            if centre[2]:
                assert out["mask"][int(centre[1]), int(centre[0])] == cls + 1
                kept += 1
    assert kept > 10, "too few visible objects to test anything"


def test_keypoint_flip_index_swaps_left_and_right():
    config = AugmentConfig(task="detection", image_size=(HEIGHT, WIDTH), scale=None, hflip=1.0,
                           color_jitter=None, fancy_pca=None, keypoint_flip_index=(1, 0))
    sample = _objects_sample()
    sample["keypoints"] = np.array([[[30, 50, 2], [100, 50, 2]]] * 3, np.float32)  # left, right
    out = Augmenter(config)(sample, seed=0)
    # albumentations flips keypoints as pixel indices: x -> width - 1 - x.
    np.testing.assert_allclose(out["keypoints"][0], [[WIDTH - 101, 50, 2], [WIDTH - 31, 50, 2]])
    # Boxes flip as pixel edges: x -> width - x.
    np.testing.assert_allclose(out["boxes"][0], [WIDTH - 120, 30, WIDTH - 20, 110])


def test_same_seed_same_output_across_processes():
    aug = build_augmenter("detection", image_size=128)
    clone = pickle.loads(pickle.dumps(aug))  # what a loader worker receives
    sample = _objects_sample()
    first, again = aug(sample, seed=11), clone(sample, seed=11)
    for key in ("image", "mask", "boxes", "classes", "keypoints"):
        np.testing.assert_array_equal(first[key], again[key])
    others = [aug(sample, seed=s)["image"] for s in range(12, 16)]
    assert any(not np.array_equal(first["image"], other) for other in others)


def test_sample_seed_depends_on_seed_epoch_and_index():
    seeds = {sample_seed(s, e, i) for s in range(2) for e in range(3) for i in range(50)}
    assert len(seeds) == 2 * 3 * 50
    assert sample_seed(0, 1, 2) == sample_seed(0, 1, 2)


def test_classification_preset_uses_fancy_pca_and_outputs_uint8():
    import albumentations as A

    aug = build_augmenter("classification", image_size=64)
    aug(_objects_sample(), seed=0)
    names = [type(t) for t in aug._compose.transforms]
    assert A.FancyPCA in names and A.RandomResizedCrop in names and A.Normalize not in names


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="task"):
        AugmentConfig(task="pose")
    with pytest.raises(ValueError, match="preset"):
        preset("detection_strong")
    with pytest.raises(ValueError, match="uint8"):
        build_augmenter("classification")({"image": np.zeros((8, 8, 3), np.float32)})


def _gray_sample():
    image = np.zeros((40, 48, 1), np.uint8)
    image[8:24, 10:30] = 200
    return {"image": image, "label": 3}


def test_grayscale_images_take_geometric_transforms_and_keep_one_channel():
    config = AugmentConfig(image_size=(32, 32), scale=(0.85, 1.0), ratio=(0.9, 1.1), hflip=1.0,
                           color_jitter=(0.3, 0.3, 0.0, 0.0), fancy_pca=None)
    out = Augmenter(config)(_gray_sample(), seed=0)
    assert out["image"].shape == (32, 32, 1) and out["image"].dtype == np.uint8
    assert out["image"].max() > 0 and out["label"] == 3
    resized = build_augmenter("classification_eval", image_size=(20, 24))(_gray_sample())
    # The eval preset halves 40x48 -> 20x24; the bright square keeps its (halved) place.
    assert resized["image"].shape == (20, 24, 1)
    np.testing.assert_array_equal(resized["image"][4:12, 5:15], 200)


@pytest.mark.parametrize(
    "options, culprit",
    [
        (dict(color_jitter=(0.4, 0.4, 0.4, 0.0), fancy_pca=None), "color_jitter"),
        (dict(color_jitter=None, fancy_pca=0.1), "fancy_pca"),
        (dict(color_jitter=None, fancy_pca=None, rgb_shift=20), "rgb_shift"),
    ],
)
def test_colour_ops_on_grayscale_images_are_an_error(options, culprit):
    aug = build_augmenter("classification", image_size=32, **options)
    with pytest.raises(ValueError, match=f"RGB images: set {culprit}"):
        aug(_gray_sample(), seed=0)
    # The same augmenter still colours RGB images.
    rgb = {"image": np.repeat(_gray_sample()["image"], 3, axis=-1)}
    assert aug(rgb, seed=0)["image"].shape == (32, 32, 3)
