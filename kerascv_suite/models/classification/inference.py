"""Running classifiers on labelled images: input preparation, AlexNet's 10-crop test-time
augmentation, softmax-averaging ensembles. The one classification evaluation path: the test
split at the end of training and `kcv evaluate` both call `predict_dataset`.

`tta="10crop"` is AlexNet's test-time augmentation (Krizhevsky, Sutskever and Hinton,
"ImageNet Classification with Deep Convolutional Neural Networks", 2012, sec. 4.1): the
image is resized to 256/224 of the model's input, and the softmax outputs of the four corner
crops, the centre crop and their horizontal mirrors are averaged.
"""

from __future__ import annotations

import numpy as np

from kerascv_suite.data.image_io import resize_image

TTA_MODES = ("10crop",)
# AlexNet crops 224x224 patches from 256x256 images (sec. 4.1).
TEN_CROP_RESIZE = 256 / 224


def match_channels(images, channels):
    """Grayscale data for an RGB model is repeated; RGB data for a gray model is averaged."""
    have = images.shape[-1]
    if have == channels:
        return images
    if have == 1:
        return np.repeat(images, channels, axis=-1)
    if channels == 1:
        return images.mean(axis=-1, keepdims=True).round().astype(images.dtype)
    raise ValueError(f"Cannot feed {have}-channel images to a {channels}-channel model.")


def ten_crop(image, size):
    """AlexNet's ten views of one image.

    Args:
        image: `(height, width, channels)` array, at least `size`.
        size: `(crop_height, crop_width)`.

    Returns:
        `(10, crop_height, crop_width, channels)`: top-left, top-right, bottom-left,
        bottom-right and centre crops, then the same five mirrored left-right.
    """
    height, width = image.shape[:2]
    ch, cw = size
    if height < ch or width < cw:
        raise ValueError(f"A {height}x{width} image is smaller than the {ch}x{cw} crop.")
    top, left = (height - ch) // 2, (width - cw) // 2
    corners = [(0, 0), (0, width - cw), (height - ch, 0), (height - ch, width - cw), (top, left)]
    crops = [image[y:y + ch, x:x + cw] for y, x in corners]
    crops += [crop[:, ::-1] for crop in crops]
    return np.stack(crops)


def tta_views(images, size, tta):
    """`(batch * views, h, w, c)` inputs and the number of views per image."""
    if tta is None:
        return np.stack([resize_image(image, size) for image in images]), 1
    big = (round(size[0] * TEN_CROP_RESIZE), round(size[1] * TEN_CROP_RESIZE))
    return np.concatenate([ten_crop(resize_image(image, big), size) for image in images]), 10


class ClassifierInput:
    """One model with the input size and channel count its images are prepared for.

    Args:
        model: a classifier `(batch, H, W, C)` -> `(batch, num_classes)` probabilities.
        image_size: input side for a model without a fixed input size.
        fallback_size: `(height, width)` used when neither fixes it (the data's own).
    """

    def __init__(self, model, image_size, fallback_size):
        self.model = model
        shape = tuple(model.inputs[0].shape[1:])
        if len(shape) != 3:
            raise ValueError(f"Model {model.name!r} does not take images: input {shape}.")
        height, width, channels = shape
        if height is None or width is None:
            side = image_size or fallback_size
            height, width = (side, side) if isinstance(side, int) else side
        self.size = (int(height), int(width))
        self.channels = int(channels) if channels else 3

    def predict(self, images, tta):
        inputs, views = tta_views(match_channels(images, self.channels), self.size, tta)
        probabilities = np.asarray(self.model.predict_on_batch(inputs), np.float64)
        if probabilities.ndim != 2:
            raise ValueError(f"Model {self.model.name!r} does not output (batch, classes).")
        # Mean over each image's views (the views of one image are consecutive).
        return probabilities.reshape(len(images), views, -1).mean(axis=1)


def ensemble_members(models, image_size, fallback_size):
    """One averaging keras model when the members share their input (one forward pass per
    batch), else the members themselves, averaged in numpy (same arithmetic)."""
    members = [ClassifierInput(m, image_size, fallback_size) for m in models]
    if len(members) == 1:
        return members, "single"
    shapes = {(m.size, m.channels) for m in members}
    if len(shapes) > 1:
        return members, "mean"
    from kerascv_suite.models.classification.ensemble import ensemble

    averaged = ensemble([m.model for m in members], name="ensemble")
    return [ClassifierInput(averaged, image_size, fallback_size)], "model"


def predict_dataset(members, dataset, batch_size, tta=None, log=print, keep_images=0):
    """Averaged probabilities `(num_samples, num_classes)` and labels `(num_samples,)` of
    `ClassifierInput` members over every sample of `dataset` (each image resized to the
    member's input, bilinear); with `keep_images`, also the first images as the first member
    saw them: `(probabilities, labels, images)`."""
    from kerascv_suite.data.dataset import batches, log_skipped

    probabilities, labels, kept = [], [], []
    for batch in batches(dataset, batch_size):
        images = [np.asarray(sample["image"]) for sample in batch]
        images = np.stack([image[..., None] if image.ndim == 2 else image for image in images])
        outputs = [member.predict(images, tta) for member in members]
        probabilities.append(np.mean(outputs, axis=0))
        labels.extend(int(sample["label"]) for sample in batch)
        if len(kept) < keep_images:
            first = members[0]
            kept.extend(resize_image(image, first.size) for image in
                        match_channels(images, first.channels)[:keep_images - len(kept)])
    if not labels:
        raise ValueError("The evaluation split is empty; nothing to evaluate.")
    log_skipped(dataset, log)
    if keep_images:
        return np.concatenate(probabilities), np.asarray(labels), np.stack(kept)
    return np.concatenate(probabilities), np.asarray(labels)
