import numpy as np

from kerascv_suite.data import voc_palette
from kerascv_suite.visualization import colorize, overlay_mask, overlay_panel, palette_array


def _image_and_mask():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    mask = rng.integers(0, 3, size=(5, 7)).astype(np.uint8)
    return image, mask


def test_palette_is_voc_and_read_only():
    palette = palette_array()
    np.testing.assert_array_equal(palette.ravel(), np.asarray(voc_palette(), np.uint8))
    assert palette.shape == (256, 3) and not palette.flags.writeable
    np.testing.assert_array_equal(palette[1], [128, 0, 0])  # VOC class 1 (aeroplane)
    np.testing.assert_array_equal(colorize(np.array([[0, 1], [2, 0]]))[1, 0], palette[2])


def test_overlay_blends_classes_and_keeps_background():
    image, mask = _image_and_mask()
    out = overlay_mask(image, mask, alpha=0.25)
    assert out.shape == image.shape and out.dtype == np.uint8
    background = mask == 0
    np.testing.assert_array_equal(out[background], image[background])
    expected = 0.75 * image.astype(float) + 0.25 * palette_array()[mask].astype(float)
    # OpenCV's blend rounds to nearest; allow its half-way choice.
    assert np.abs(out[~background].astype(float) - expected[~background]).max() <= 0.5 + 1e-9


def test_overlay_of_gray_image_is_rgb():
    image, mask = _image_and_mask()
    gray = image[..., :1]
    out = overlay_mask(gray, mask)
    np.testing.assert_array_equal(out, overlay_mask(np.repeat(gray, 3, axis=-1), mask))


def test_overlay_panel_draws_ignore_as_background():
    image, mask = _image_and_mask()
    truth = mask.copy()
    truth[0, 0] = 255
    panel = overlay_panel(image, truth, mask)
    assert panel.shape == (5, 21, 3)
    np.testing.assert_array_equal(panel[:, :7], image)
    np.testing.assert_array_equal(panel[0, 7], image[0, 0])  # 255 drawn as background
    np.testing.assert_array_equal(panel[:, 14:], overlay_mask(image, mask))
