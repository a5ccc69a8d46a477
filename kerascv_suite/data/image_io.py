"""Robust image decoding (and the few encoders the writers need).

`decode_image` is the one entry point for reading pixels. It uses Pillow because
Pillow reads the header (size, mode, EXIF) without decoding the pixels, which is
what lets us refuse decompression bombs before allocating them.
"""

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from kerascv_suite.data.errors import BadImageError

# A 20000 x 20000 image is 1.2 GB as uint8 RGB; anything larger is refused unread.
# Pillow has its own guard, refusing above 2 * PIL.Image.MAX_IMAGE_PIXELS (~179M pixels)
# while reading the header; both refusals happen before any pixel is decoded and both
# raise BadImageError(reason="decompression bomb refused"). To accept larger images,
# raise both this limit and PIL.Image.MAX_IMAGE_PIXELS.
DEFAULT_MAX_PIXELS = 20000 * 20000

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm")


def _open(path, max_pixels):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise BadImageError(path, "file not found")
    if os.path.isdir(path):
        raise BadImageError(path, "is a directory")
    if os.path.getsize(path) == 0:
        raise BadImageError(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Pillow warns (and above 2x its own limit raises) on big images; the limit
            # we enforce is `max_pixels`, checked right below from the header alone.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as error:
        raise BadImageError(path, "decompression bomb refused", str(error)) from None
    except UnidentifiedImageError:
        raise BadImageError(path, "not an image (unrecognized file format)") from None
    except OSError as error:
        raise BadImageError(path, "unreadable header", str(error)) from None
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        image.close()
        raise BadImageError(path, "decompression bomb refused",
                            f"header says {width}x{height} = {width * height} pixels > "
                            f"max_pixels={max_pixels}")
    if width < 1 or height < 1:
        image.close()
        raise BadImageError(path, "invalid size", f"{width}x{height}")
    return image


def _header(path, max_pixels):
    """`((height, width), format)` from the header (EXIF orientation applied to the size)."""
    image = _open(path, max_pixels)
    try:
        width, height = image.size
        image_format = image.format
        # EXIF orientations 5..8 swap the axes once applied.
        orientation = image.getexif().get(0x0112, 1)
    except Exception as error:  # noqa: BLE001 - any EXIF parse failure means a bad header
        raise BadImageError(path, "unreadable header", str(error)) from None
    finally:
        image.close()
    size = (width, height) if orientation in (5, 6, 7, 8) else (height, width)
    return size, image_format


def image_size(path, max_pixels=DEFAULT_MAX_PIXELS):
    """Reads `(height, width)` from the header only, with the same checks as `decode_image`.

    Raises:
        BadImageError: missing, empty, not an image, or larger than `max_pixels`.
    """
    return _header(path, max_pixels)[0]


# What a complete file of these formats ends with: JPEG's EOI marker, PNG's IEND chunk.
_FILE_ENDS = {"JPEG": (b"\xff\xd9",), "MPO": (b"\xff\xd9",),
              "PNG": (b"IEND\xaeB`\x82",)}


def ends_complete(path, image_format):
    """Whether the file's last bytes are its format's end marker (True for formats without
    one we check). A False means "probably truncated": confirm it with a full decode, since
    some writers append data after the end marker."""
    ends = _FILE_ENDS.get(image_format)
    if not ends:
        return True
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 16))
        tail = handle.read().rstrip(b"\x00\r\n\t ")
    return tail.endswith(ends)


def check_image(path, *, max_pixels=DEFAULT_MAX_PIXELS, allow_truncated=False):
    """`(height, width)` of an image that decodes, checked cheaply up front.

    The header checks of `image_size`, plus the end of JPEG and PNG files (one small read):
    a file that does not end with its format's end marker is decoded in full, so a
    truncated file is refused here, when a dataset is read, rather than when its pixels
    are first needed in training. Corruption in the middle of a complete file is only found
    by `decode_image`.

    Raises:
        BadImageError: missing, empty, not an image, larger than `max_pixels`, or (unless
            `allow_truncated`) truncated.
    """
    size, image_format = _header(path, max_pixels)
    if not allow_truncated and not ends_complete(path, image_format):
        decode_image(path, max_pixels=max_pixels)  # raises for a truncated file
    return size


def _to_rgb(image):
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit grayscale: keep the high byte, as Pillow itself does for 16-bit RGB PNGs.
        array = np.asarray(image).astype(np.int64)
        # Mode "I" is also used for 8-bit data widened to 32 bits; only shift real 16-bit.
        if mode != "I" or array.max(initial=0) > 255:
            array = array >> 8
        array = np.clip(array, 0, 255)
        return np.repeat(array.astype(np.uint8)[..., None], 3, axis=-1)
    if mode == "F":
        array = np.clip(np.asarray(image), 0, 255).round().astype(np.uint8)
        return np.repeat(array[..., None], 3, axis=-1)
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in image.info):
        # Transparent pixels become white (as a browser shows them on a white page),
        # rather than whatever colour happens to be stored under alpha = 0.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    # CMYK (Pillow undoes Adobe's inverted CMYK), YCbCr, L, 1, P without alpha.
    return np.asarray(image.convert("RGB"))


def decode_image(path, *, max_pixels=DEFAULT_MAX_PIXELS, allow_truncated=False, channels=3):
    """Decodes an image file to a uint8 array, or raises `BadImageError` naming the file.

    Handles: 8/16-bit PNG (16-bit keeps the high byte), grayscale and palette images
    (expanded to RGB), RGBA/LA/transparent palette (composited on white), CMYK JPEG
    (converted to RGB), EXIF orientation (applied, so the array is upright).

    Refuses: a missing, zero-byte or non-image file; an image whose *header* says more
    than `max_pixels` pixels (checked before any pixel is decoded); a truncated file
    (unless `allow_truncated`, which returns Pillow's partial decode, grey below the cut).

    Args:
        path: the image file.
        max_pixels: largest `width * height` accepted, or None for no limit.
        allow_truncated: decode what is there instead of refusing a truncated file.
        channels: 3 for `(height, width, 3)` RGB, 1 for `(height, width, 1)` grayscale
            (ITU-R 601-2 luma, Pillow's "L" conversion).

    Returns:
        A `uint8` array of shape `(height, width, channels)`.

    Raises:
        BadImageError: with `.path` and `.reason`.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3. Received: channels={channels}")
    image = _open(path, max_pixels)
    try:
        try:
            image.load()
        except OSError as error:
            if not allow_truncated:
                raise BadImageError(path, "truncated or corrupt data", str(error)) from None
            from PIL import ImageFile

            previous = ImageFile.LOAD_TRUNCATED_IMAGES
            ImageFile.LOAD_TRUNCATED_IMAGES = True
            try:
                image.close()
                image = _open(path, max_pixels)
                image.load()
            finally:
                ImageFile.LOAD_TRUNCATED_IMAGES = previous
        except (ValueError, SyntaxError, EOFError) as error:
            raise BadImageError(path, "corrupt data", str(error)) from None
        try:
            image = ImageOps.exif_transpose(image)
        except Exception as error:  # noqa: BLE001 - a broken EXIF block is a broken file
            raise BadImageError(path, "unreadable EXIF orientation", str(error)) from None
        rgb = np.ascontiguousarray(_to_rgb(image), dtype=np.uint8)
    finally:
        image.close()
    if channels == 1:
        # Luma from RGB (after alpha compositing / CMYK conversion), like Pillow's "L".
        weights = np.array([299, 587, 114], dtype=np.int64)
        gray = (rgb.astype(np.int64) @ weights + 500) // 1000
        return gray.astype(np.uint8)[..., None]
    return rgb


def read_mask(path, *, max_pixels=DEFAULT_MAX_PIXELS):
    """Reads a class-id mask PNG: palette ("P") indices or grayscale values, as uint8 (H, W).

    Raises:
        BadImageError: unreadable, or an RGB mask (colours are not class ids; save the
            mask as an indexed or grayscale PNG).
    """
    image = _open(path, max_pixels)
    try:
        try:
            image.load()
        except OSError as error:
            raise BadImageError(path, "truncated or corrupt data", str(error)) from None
        if image.mode in ("P", "L"):
            return np.array(image, dtype=np.uint8)
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            array = np.asarray(image)
            if array.max(initial=0) > 255:
                raise BadImageError(path, "mask has values above 255; class ids must fit uint8")
            return array.astype(np.uint8)
        raise BadImageError(path, f"mask mode {image.mode!r} is not a class-id mask; save it as "
                            "an indexed (palette) or grayscale PNG")
    finally:
        image.close()


def voc_palette(num_colors=256):
    """The Pascal VOC colour map: a flat list of `3 * num_colors` ints (index 255 is cream)."""
    palette = []
    for index in range(num_colors):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette += [r, g, b]
    return palette


def resize_image(image, size):
    """`image` resized to `size` the way the evaluation augmenters resize it.

    Bilinear (`cv2.INTER_LINEAR`) both ways, the interpolation of albumentations'
    `Resize` in the `"*_eval"` presets of `kerascv_suite.data.augment` (its output is
    identical to this one's), so a model predicting on files sees its inputs as it saw
    them when it was evaluated. The channel count is kept.

    Args:
        image: `(height, width)` or `(height, width, channels)` array (uint8 or float).
        size: `(height, width)` of the output.

    Returns:
        `(height, width, *image.shape[2:])`; `image` itself when it already has that size.
    """
    import cv2

    height, width = (int(v) for v in size)
    if min(height, width) < 1:
        raise ValueError(f"size must be a positive (height, width). Received: size={size!r}")
    if image.shape[:2] == (height, width):
        return image
    resized = cv2.resize(np.ascontiguousarray(image), (width, height),
                         interpolation=cv2.INTER_LINEAR)
    return resized.reshape(height, width, *image.shape[2:])


def write_image(path, image, *, quality=95):
    """Writes a uint8 `(H, W, 3)` RGB or `(H, W)`/`(H, W, 1)` gray array; format from suffix."""
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    if str(path).lower().endswith((".jpg", ".jpeg")):
        # OpenCV's encoder takes about half of Pillow's CPU for the same quality (the
        # `kcv segment` / `kcv detect` writer threads share the cores with the model).
        import cv2

        bgr = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise OSError(f"OpenCV could not encode {path} as JPEG")
        Path(path).write_bytes(data.tobytes())
        return
    Image.fromarray(array).save(path)


def write_mask(path, mask, *, palette=True):
    """Writes a uint8 class-id mask as a PNG, indexed with the VOC palette (or grayscale)."""
    array = np.asarray(mask, dtype=np.uint8)
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    image = Image.fromarray(array)
    if palette:
        image = image.convert("P")
        image.putpalette(voc_palette())
        # convert("P") from "L" keeps the values as indices; re-put them to be certain.
        image.frombytes(array.tobytes())
    image.save(path)
