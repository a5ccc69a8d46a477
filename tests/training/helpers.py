"""Small on-disk datasets for training tests."""

import socket

import cv2
import keras
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


class SeparableBatches(keras.utils.PyDataset):
    """`steps` batches of `batch` rows of a separable 2-class problem (4 features)."""

    def __init__(self, batch=8, steps=4):
        super().__init__()
        rng = np.random.default_rng(0)
        self.batch, self.steps = batch, steps
        self.y = rng.integers(0, 2, batch * steps)
        self.x = (rng.normal(size=(batch * steps, 4)) + 2.0 * self.y[:, None]).astype("float32")

    def __len__(self):
        return self.steps

    def __getitem__(self, i):
        rows = slice(i * self.batch, (i + 1) * self.batch)
        return self.x[rows], self.y[rows]
