import pickle
import warnings

import numpy as np
import pytest

from kerascv_suite.data.augment import (
    PRESETS,
    AugmentConfig,
    Augmenter,
    GrayscaleColourWarning,
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
    names = [type(t) for t in aug.pipeline(3).transforms]
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
def test_colour_ops_on_grayscale_images_are_skipped_and_said_once(options, culprit):
    import albumentations as A

    aug = build_augmenter("classification", image_size=32, **options)
    with pytest.warns(GrayscaleColourWarning, match=f"{culprit}=.* is skipped") as record:
        first = aug(_gray_sample(), seed=5)
    assert len(record) == 1
    assert first["image"].shape == (32, 32, 1) and first["image"].dtype == np.uint8
    # Skipped, not approximated: the same seed gives exactly what a config without the
    # colour ops gives (color_jitter keeps its brightness and contrast).
    plain = dict(options, fancy_pca=None, rgb_shift=None)
    if options.get("color_jitter"):
        plain["color_jitter"] = (0.4, 0.4, 0.0, 0.0)
    expected = build_augmenter("classification", image_size=32, **plain)(_gray_sample(), seed=5)
    np.testing.assert_array_equal(first["image"], expected["image"])
    gray_ops = {type(t) for t in aug.pipeline(1).transforms}
    assert not gray_ops & {A.FancyPCA, A.RGBShift}
    # Said once per augmenter, also by a copy pickled for a worker after the first call.
    with warnings.catch_warnings():
        warnings.simplefilter("error", GrayscaleColourWarning)
        for seed in range(3):
            assert aug(_gray_sample(), seed=seed)["image"].shape == (32, 32, 1)
        pickle.loads(pickle.dumps(aug))(_gray_sample(), seed=0)
    # The same augmenter still colours RGB images.
    rgb = {"image": np.repeat(_gray_sample()["image"], 3, axis=-1)}
    assert aug(rgb, seed=0)["image"].shape == (32, 32, 3)
    assert {A.FancyPCA, A.RGBShift} & {type(t) for t in aug.pipeline(3).transforms} or \
        culprit == "color_jitter"


def test_grayscale_without_colour_ops_says_nothing():
    aug = build_augmenter("classification", image_size=32, color_jitter=(0.3, 0.3, 0, 0),
                          fancy_pca=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GrayscaleColourWarning)
        assert aug(_gray_sample(), seed=0)["image"].shape == (32, 32, 1)


def _square_sample(size=64, lo=24, hi=40):
    image = np.zeros((size, size, 1), np.uint8)
    image[lo:hi, lo:hi] = 255
    mask = np.zeros((size, size), np.uint8)
    mask[lo:hi, lo:hi] = 1
    return {"image": image, "mask": mask, "label": 1,
            "boxes": np.array([[lo, lo, hi, hi]], np.float32), "classes": np.array([0]),
            "keypoints": np.array([[[lo, lo, 2]]], np.float32)}


def _bright_box(image):
    ys, xs = np.nonzero(image[..., 0] > 127)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def test_translation_moves_image_mask_boxes_and_keypoints_together():
    aug = build_augmenter("detection", image_size=64, scale=None, hflip=0.0,
                          color_jitter=None, fancy_pca=None, translate=0.25, affine_p=1.0)
    shifts = []
    for seed in range(6):
        out = aug(_square_sample(), seed=seed)
        assert out["image"].shape == (64, 64, 1) and out["mask"].shape == (64, 64)
        assert out["boxes"].shape == (1, 4) and out["keypoints"].shape == (1, 1, 3)
        box = _bright_box(out["image"])
        np.testing.assert_allclose(out["boxes"][0], box, atol=1.0)
        np.testing.assert_allclose(out["keypoints"][0, 0, :2], box[:2], atol=1.0)
        assert out["mask"][int(box[1]) + 2, int(box[0]) + 2] == 1
        shift = box[:2] - 24
        assert np.all(np.abs(shift) <= 0.25 * 64 + 1)  # within the configured limit
        shifts.append(tuple(shift))
    assert len(set(shifts)) > 1  # it does move, differently per seed


def test_affine_is_deterministic_with_a_seed_and_keeps_shapes():
    config = AugmentConfig(image_size=(32, 32), scale=None, hflip=0.0, color_jitter=None,
                           fancy_pca=None, translate=0.1, rotate=12, shear=5, zoom=(0.9, 1.1),
                           affine_p=1.0)
    sample = _square_sample(40, 10, 30)
    a, b = Augmenter(config), pickle.loads(pickle.dumps(Augmenter(config)))
    outs = [a(sample, seed=s)["image"] for s in (3, 4)]
    np.testing.assert_array_equal(outs[0], b(sample, seed=3)["image"])
    assert outs[0].shape == (32, 32, 1) and not np.array_equal(outs[0], outs[1])
    rgb = dict(sample, image=np.repeat(sample["image"], 3, axis=-1))
    assert a(rgb, seed=3)["image"].shape == (32, 32, 3)


def test_zoom_out_fills_image_with_zero_and_mask_with_ignore():
    aug = build_augmenter("segmentation", image_size=64, scale=None, hflip=0.0,
                          color_jitter=None, fancy_pca=None, zoom=(0.5, 0.5), affine_p=1.0)
    sample = _square_sample()
    sample["image"][sample["image"] == 0] = 100
    out = aug(sample, seed=0)
    assert out["image"][0, 0, 0] == 0 and out["mask"][0, 0] == 255
    assert out["image"][32, 32, 0] == 255 and out["mask"][32, 32] == 1


def test_presets_apply_no_affine_and_bad_affine_options_are_rejected():
    import albumentations as A

    for name in PRESETS:
        assert not preset(name).has_affine()
        assert A.Affine not in {type(t) for t in build_augmenter(name, image_size=32)
                                .pipeline(3).transforms}
    with pytest.raises(ValueError, match="rotate=-5"):
        AugmentConfig(rotate=-5)
    with pytest.raises(ValueError, match=r"zoom=\(1.2, 1.0\)"):
        AugmentConfig(zoom=(1.2, 1.0))
    with pytest.raises(ValueError, match="affine_p=2"):
        AugmentConfig(translate=0.1, affine_p=2)
