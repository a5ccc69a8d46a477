"""`kcv detect` with an instance segmentation model: masks mapped back to each photo,
instance-id PNGs, COCO RLE (checked with pycocotools) and overlays."""

import json

import cv2
import numpy as np
import pytest

from kerascv_suite.data import read_mask, resize_image, write_image
from kerascv_suite.data.rle import rle_encode_region
from kerascv_suite.pipelines.detect_folder import (DetectConfig, letterbox, masks_to_original,
                                                   run)
from kerascv_suite.visualization.masks import overlay_instances

SIZE = (64, 64)
# Brightness thresholds of the three detections; the fourth row is padding.
THRESHOLDS = (0.3, 0.5, 0.7, 0.1)


def full_masks(regions, shape):
    out = np.zeros((len(regions), *shape), np.uint8)
    for k, (top, left, mask) in enumerate(regions):
        out[k, top:top + mask.shape[0], left:left + mask.shape[1]] = mask
    return out


def sampled_at_pixel_centres(soft, shape, resize):
    """The reference mapping, with scipy: the soft input mask sampled bilinearly at every
    original pixel centre mapped into the input as the boxes are (`x_in = x * s + offset`)."""
    from scipy.ndimage import map_coordinates

    height, width = shape
    if resize == "letterbox":
        scale = min(SIZE[0] / height, SIZE[1] / width)
        sy = sx = scale
        oy = (SIZE[0] - round(height * scale)) // 2
        ox = (SIZE[1] - round(width * scale)) // 2
    else:
        sy, sx, oy, ox = SIZE[0] / height, SIZE[1] / width, 0, 0
    ys, xs = np.meshgrid((np.arange(height) + 0.5) * sy + oy - 0.5,
                         (np.arange(width) + 0.5) * sx + ox - 0.5, indexing="ij")
    return map_coordinates(soft, [ys, xs], order=1, mode="nearest")


def iou(a, b):
    union = (a | b).sum()
    return (a & b).sum() / union if union else 1.0


@pytest.fixture(scope="module")
def mask_model():
    """A functional model returning the detector contract plus `masks` (B, 4, 64, 64): soft
    masks of the pixels brighter than each detection's threshold."""
    import keras
    from keras import ops

    from kerascv_suite.models import with_metadata

    images = keras.Input((*SIZE, 3))

    def heads(x):
        gray = ops.mean(x, axis=-1) / 255.0
        masks = ops.stack([ops.clip((gray - t) * 4.0 + 0.5, 0.0, 1.0) for t in THRESHOLDS], 1)
        batch = ops.shape(x)[0]
        boxes = ops.convert_to_tensor([[2.0, 2.0, 40.0, 30.0], [10.0, 5.0, 60.0, 62.0],
                                       [0.0, 0.0, 64.0, 64.0], [0.0, 0.0, 0.0, 0.0]])
        ones = ops.ones((batch, 1))
        return {"boxes": ops.ones((batch, 1, 1)) * boxes[None],
                "scores": ones * ops.convert_to_tensor([[0.9, 0.8, 0.7, 0.0]]),
                "classes": ops.cast(ones * ops.convert_to_tensor([[0.0, 1.0, 0.0, -1.0]]),
                                    "int32"),
                "num_detections": ops.cast(ops.ones((batch,)) * 3, "int32"),
                "masks": masks}

    outputs = keras.layers.Lambda(heads)(images)
    model = keras.Model(images, outputs, name="toy_mask_rcnn")
    return with_metadata(model, class_names=["dark", "bright"], input_shape=(*SIZE, 3),
                         decoder={"num_classes": 2, "score_threshold": 0.25})


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from skimage import data

    root = tmp_path_factory.mktemp("photos")
    for name, image in (("coffee", data.coffee()), ("cat", data.chelsea())):
        write_image(root / f"{name}.png", image[::2, ::2])  # 200x300 and 150x226, lossless
    return root


@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
def test_detect_writes_instance_masks(mask_model, photos, tmp_path, resize):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    out = tmp_path / "out"
    result = run(DetectConfig(str(photos), "toy", out=str(out), resize=resize, batch_size=2),
                 model=mask_model, log=lambda *_: None)
    assert result.written == 2 and result.num_detections == 6
    for name in ("coffee", "cat"):
        original = cv2.cvtColor(cv2.imread(str(photos / f"{name}.png")), cv2.COLOR_BGR2RGB)
        height, width = original.shape[:2]
        prepared = (letterbox if resize == "letterbox" else resize_image)(original, SIZE)
        soft = np.asarray(mask_model.predict_on_batch(prepared[None].astype("float32"))
                          ["masks"])[0, :3]
        record = json.loads((out / "detections" / f"{name}.json").read_text())
        decoded = np.stack([mask_utils.decode(d["segmentation"]) for d in record["detections"]])
        assert decoded.shape == (3, height, width)
        for k in range(3):
            reference = sampled_at_pixel_centres(soft[k], (height, width), resize)
            assert iou(decoded[k], (reference >= 0.5).astype(np.uint8)) > 0.99
            assert record["detections"][k]["area"] == decoded[k].sum() > 0
        # Brighter thresholds give nested masks (a check that each row is its own mask).
        assert (decoded[2] <= decoded[1]).all() and (decoded[1] <= decoded[0]).all()
        # The instance-id PNG is the RLE masks, the best-scoring instance on top.
        ids = read_mask(out / "masks" / f"{name}.png")
        taken = np.zeros((height, width), bool)
        for k in range(3):
            np.testing.assert_array_equal(ids == k + 1, (decoded[k] > 0) & ~taken)
            taken |= decoded[k] > 0
        assert (ids[~taken] == 0).all()
    api = COCO(str(out / "detections.json"))
    results = api.loadRes(str(out / "results.json"))
    first = results.loadAnns(results.getAnnIds(imgIds=[1]))[0]
    assert "bbox" in first and results.annToMask(first).shape == (150, 226)  # cat.png
    # A re-run finds every output (masks included) and redoes nothing.
    again = run(DetectConfig(str(photos), "toy", out=str(out), resize=resize),
                model=mask_model, log=lambda *_: None)
    assert again.written == 0 and again.existing == 2


def test_masks_to_original_equals_a_full_resize():
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    soft = cv2.GaussianBlur(rng.random((5, 32, 48)).astype(np.float32), (0, 0), 3)
    soft = (soft - soft.min()) / (soft.max() - soft.min())
    soft[4] = 0.0  # an empty instance
    regions = masks_to_original(soft, (75, 50), (32, 48))
    masks = full_masks(regions, (75, 50))
    assert masks[4].sum() == 0
    for k in range(4):
        reference = cv2.resize(soft[k], (50, 75), interpolation=cv2.INTER_LINEAR) >= 0.5
        assert (masks[k] != reference).mean() < 0.005
        top, left, crop = regions[k]
        assert rle_encode_region(crop, top, left, (75, 50))["counts"] == \
            mask_utils.encode(np.asfortranarray(masks[k]))["counts"].decode()
    with pytest.raises(ValueError, match="input size"):
        masks_to_original(soft, (75, 50), (32, 32))


def test_rle_encode_region_equals_pycocotools():
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(1)
    for _ in range(300):
        height, width = (int(v) for v in rng.integers(1, 12, 2))
        h, w = int(rng.integers(1, height + 1)), int(rng.integers(1, width + 1))
        top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        crop = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        full = np.zeros((height, width), np.uint8)
        full[top:top + h, left:left + w] = crop
        rle = rle_encode_region(crop, top, left, (height, width))
        assert rle["counts"] == mask_utils.encode(np.asfortranarray(full))["counts"].decode()
        np.testing.assert_array_equal(mask_utils.decode(rle), full)


def test_overlay_instances_tints_and_outlines():
    image = np.full((20, 30, 3), 100, np.uint8)
    first = np.zeros((8, 10), np.uint8)
    first[1:7, 1:9] = 1  # rows 3..8, columns 4..11 of the image
    out = overlay_instances(image, [first, np.ones((4, 4), np.uint8)],
                            [(255, 0, 0), (0, 0, 255)], offsets=[(2, 3), (7, 10)], alpha=0.5)
    assert (out[:3] == 100).all() and (out[:, 14:] == 100).all()  # untouched outside
    np.testing.assert_array_equal(out[5, 6], [178, 50, 50])  # tinted: 100 / 2 + 255 / 2
    np.testing.assert_array_equal(out[3, 6], [255, 0, 0])  # the outline
    np.testing.assert_array_equal(out[9, 12], [50, 50, 178])  # the second alone
    np.testing.assert_array_equal(out[10, 13], [0, 0, 255])  # its outline
    np.testing.assert_array_equal(out[8, 10], [255, 0, 0])  # the first drawn on top
