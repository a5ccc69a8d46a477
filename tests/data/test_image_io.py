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
