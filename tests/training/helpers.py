"""Small on-disk datasets for training tests."""

import socket

import cv2
import numpy as np

COLORS = ((230, 40, 40), (40, 200, 40), (40, 40, 230))


def make_color_folders(root, per_class=8, size=32, seed=0):
    """`root/<class>/<i>.png`: noisy backgrounds with a coloured square (3 easy classes)."""
    rng = np.random.default_rng(seed)
    for label, color in enumerate(COLORS):
        folder = root / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 80, (size, size, 3)).astype(np.uint8)
            image[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = color
            cv2.imwrite(str(folder / f"{i}.png"), image[..., ::-1])
    return root


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
