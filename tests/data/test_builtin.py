import numpy as np
import pytest

from kerascv_suite.data import load_digits, make_shapes


def test_shapes_contract_and_determinism():
    ds = make_shapes(count=6, image_size=(40, 48), num_classes=3, max_objects=4, seed=5)
    again = make_shapes(count=6, image_size=(40, 48), num_classes=3, max_objects=4, seed=5)
    other = make_shapes(count=6, image_size=(40, 48), num_classes=3, max_objects=4, seed=6)
    assert ds.class_names == ["circle", "square", "triangle"]
    assert ds.mask_class_names[0] == "background"
    for i in range(len(ds)):
        a, b = ds[i], again[i]
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
        n = len(a["boxes"])
        assert a["image"].shape == (40, 48, 3) and a["image"].dtype == np.uint8
        assert a["boxes"].dtype == np.float32 and a["classes"].dtype == np.int32
        assert a["instance_masks"].shape == (n, 40, 48) and a["keypoints"].shape == (n, 4, 3)
        for k in range(n):
            ys, xs = np.nonzero(a["instance_masks"][k])
            np.testing.assert_array_equal(a["boxes"][k],
                                          [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            assert (a["mask"][a["instance_masks"][k] > 0] == a["classes"][k] + 1).all()
        assert (a["instance_masks"].sum(0) <= 1).all()  # objects never overlap
    assert not np.array_equal(ds[0]["image"], other[0]["image"])
    assert not np.array_equal(ds[0]["image"], make_shapes(count=1, image_size=(40, 48),
                                                          seed=5, split="val")[0]["image"])


def test_shapes_num_classes_and_keypoints():
    ds = make_shapes(count=10, image_size=32, num_classes=2, seed=0)
    classes = np.concatenate([s["classes"] for s in ds])
    assert set(classes.tolist()) <= {0, 1} and len(ds.class_names) == 2
    for sample in ds:
        for class_id, points in zip(sample["classes"], sample["keypoints"]):
            assert (points[:, 2] == 2).all()  # circle: 4 points, square: 4 corners


@pytest.mark.parametrize("kwargs", [{"num_classes": 4}, {"image_size": 8}, {"split": "dev"}])
def test_shapes_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        make_shapes(**kwargs)


def test_digits_splits():
    splits = {name: load_digits(name) for name in ("train", "val", "test")}
    # 1797 digits (scikit-learn load_digits); test = val = ceil(0.15 * 1797) = 270.
    assert {k: len(v) for k, v in splits.items()} == {"train": 1257, "val": 270, "test": 270}
    paths = [set(s["path"] for s in ds) for ds in splits.values()]
    assert not (paths[0] & paths[1] or paths[0] & paths[2] or paths[1] & paths[2])
    sample = splits["train"][0]
    assert sample["image"].shape == (32, 32, 1) and sample["image"].dtype == np.uint8
    assert sample["image"][:2].max() == 0 and sample["image"][:, -2:].max() == 0  # padding
    assert sample["image"].max() > 200
    # Stratified: every digit is in every split, 25..28 times in val.
    counts = np.bincount([s["label"] for s in splits["val"]], minlength=10)
    assert counts.min() >= 25 and counts.max() <= 29
    assert [s["path"] for s in load_digits("test")] == [s["path"] for s in splits["test"]]
    with pytest.raises(ValueError):
        load_digits("dev")
