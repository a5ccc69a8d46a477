import numpy as np
import pytest

from kerascv_suite.data import BadImageError, decode_image, image_size
from tests.data.corpus import write_image_corpus


@pytest.fixture
def images(tmp_path):
    return write_image_corpus(tmp_path / "images")


def test_good_jpeg(images):
    image = decode_image(images["good"])
    assert image.dtype == np.uint8 and image.shape == (24, 32, 3)


@pytest.mark.parametrize("case, reason", [
    ("truncated", "truncated or corrupt data"),
    ("empty", "empty file (0 bytes)"),
    ("text", "not an image (unrecognized file format)"),
    ("bomb", "decompression bomb refused"),
])
def test_bad_images_raise_naming_the_file(images, case, reason):
    with pytest.raises(BadImageError) as info:
        decode_image(images[case])
    assert info.value.reason == reason
    assert str(images[case]) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(BadImageError, match="file not found"):
        decode_image(tmp_path / "nope.jpg")


def test_bomb_refused_from_header_alone(images):
    # The file is 1x1 pixel of data; only its header says 30000x30000.
    assert images["bomb"].stat().st_size < 200
    with pytest.raises(BadImageError, match="decompression bomb refused") as info:
        image_size(images["bomb"])
    assert str(images["bomb"]) in str(info.value)
    with pytest.raises(BadImageError, match="max_pixels=100"):
        decode_image(images["good"], max_pixels=100)


def test_truncated_allowed_on_request(images):
    image = decode_image(images["truncated"], allow_truncated=True)
    assert image.shape == (96, 96, 3)


def test_16_bit_png_keeps_high_byte(images):
    image = decode_image(images["gray16"])
    expected = ((np.arange(120).reshape(12, 10) * 500) >> 8).astype(np.uint8)
    assert image.shape == (12, 10, 3)
    np.testing.assert_array_equal(image[..., 0], expected)
    np.testing.assert_array_equal(image[..., 2], expected)


def test_cmyk_jpeg_to_rgb(images):
    image = decode_image(images["cmyk"])
    assert image.shape == (16, 16, 3)
    # The file was made from RGB (200, 30, 30); JPEG + CMYK round trip stays close.
    np.testing.assert_allclose(image.reshape(-1, 3).mean(0), (200, 30, 30), atol=12)


def test_rgba_composited_on_white(images):
    image = decode_image(images["rgba"])
    assert image.shape == (8, 8, 3)
    np.testing.assert_array_equal(image[0, 0], (10, 200, 10))
    np.testing.assert_array_equal(image[-1, -1], (255, 255, 255))


def test_grayscale_expanded_and_single_channel(images):
    image = decode_image(images["gray"])
    assert image.shape == (5, 7, 3) and (image == 77).all()
    assert decode_image(images["gray"], channels=1).shape == (5, 7, 1)


def test_exif_orientation_applied(images):
    image = decode_image(images["exif"])
    assert image.shape == (40, 20, 3)
    assert image_size(images["exif"]) == (40, 20)
    top, bottom = image[:15].reshape(-1, 3).mean(0), image[-15:].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[2] < 60  # red went to the top after rotating 90 deg CW
    assert bottom[2] > 200 and bottom[0] < 60


def test_resize_image_hand_computed_bilinear():
    from kerascv_suite.data import resize_image

    # 1 x 2 -> 1 x 4, pixel-centre bilinear: output x = 0.25, 0.75, 1.25, 1.75 maps to input
    # x = -0.25 (edge: 0), 0.25, 0.75, 1.25 (edge: 1): 0, 25, 75, 100.
    image = np.array([[[0], [100]]], np.uint8)
    out = resize_image(image, (1, 4))
    assert out.shape == (1, 4, 1)
    np.testing.assert_array_equal(out[0, :, 0], [0, 25, 75, 100])
    # Halving averages pixel pairs (bilinear samples exactly between them); area would too,
    # so also check a 4 -> 3 shrink where they differ: bilinear samples input x = 1/6, 1.5,
    # 17/6 of [0, 60, 120, 180] -> 10, 90, 170 (area would average: 15, 90, 165).
    np.testing.assert_array_equal(resize_image(np.array([[0, 60, 120, 180]], np.uint8),
                                               (1, 3)), [[10, 90, 170]])
    assert resize_image(image, (1, 2)) is image
    with pytest.raises(ValueError, match="Received: size="):
        resize_image(image, (0, 4))


@pytest.mark.parametrize("task", ["classification", "detection", "segmentation"])
@pytest.mark.parametrize("shape, size", [((48, 64, 3), (20, 24)), ((30, 20, 3), (64, 50)),
                                         ((40, 48, 1), (20, 24))])
def test_resize_image_is_what_the_eval_augmenters_give(task, shape, size):
    """Prediction on files (`resize_image`) sees what evaluation (the `*_eval` presets) saw."""
    from kerascv_suite.data import build_augmenter, resize_image

    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    evaluated = build_augmenter(f"{task}_eval", image_size=size)({"image": image})["image"]
    np.testing.assert_array_equal(resize_image(image, size), evaluated)
