"""A fixed corpus of good and bad inputs, written into a temporary folder by the fixtures."""

import struct
import zlib

import numpy as np
from PIL import Image


def noise_rgb(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def save_jpeg(path, array, **kwargs):
    Image.fromarray(array).save(path, quality=95, **kwargs)
    return path


def png_with_header_size(path, width, height):
    """A valid 1x1 PNG whose IHDR claims `width x height` (a decompression-bomb header)."""
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    # IHDR payload starts after the 8-byte signature, 4-byte length and 4-byte type.
    data[16:20] = struct.pack(">I", width)
    data[20:24] = struct.pack(">I", height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def write_image_corpus(folder):
    """Writes every image case; returns {case: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = {}
    cases["good"] = save_jpeg(folder / "good.jpg", noise_rgb(24, 32))
    big = folder / "big.jpg"
    save_jpeg(big, noise_rgb(96, 96, seed=1))
    data = big.read_bytes()
    cases["truncated"] = folder / "truncated.jpg"
    cases["truncated"].write_bytes(data[: len(data) // 2])
    cases["empty"] = folder / "empty.jpg"
    cases["empty"].write_bytes(b"")
    cases["text"] = folder / "text.jpg"
    cases["text"].write_text("this is not a JPEG\n")
    gray16 = (np.arange(12 * 10).reshape(12, 10) * 500).astype(np.uint16)
    cases["gray16"] = folder / "gray16.png"
    Image.fromarray(gray16).save(cases["gray16"])
    cmyk = Image.fromarray(np.full((16, 16, 3), (200, 30, 30), np.uint8)).convert("CMYK")
    cases["cmyk"] = folder / "cmyk.jpg"
    cmyk.save(cases["cmyk"], quality=95)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = (10, 200, 10)
    rgba[:4, :, 3] = 255  # top half opaque green, bottom half fully transparent
    cases["rgba"] = folder / "rgba.png"
    Image.fromarray(rgba).save(cases["rgba"])
    cases["gray"] = folder / "gray.png"
    Image.fromarray(np.full((5, 7), 77, np.uint8)).save(cases["gray"])
    # Stored 40 wide x 20 high, left half red, right half blue; EXIF 6 = rotate 90 deg CW.
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    cases["exif"] = save_jpeg(folder / "exif.jpg", stored, exif=exif)
    cases["bomb"] = png_with_header_size(folder / "bomb.png", 30000, 30000)
    return cases
