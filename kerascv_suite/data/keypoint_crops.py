"""Top-down keypoint samples: one sample per object, cropped around its box.

Top-down pose estimation (as MPII single-person pose in Newell et al., "Stacked Hourglass
Networks for Human Pose Estimation", ECCV 2016, section 3.3) crops every annotated object
around its given centre and scale and resizes the crop to the model's input. `ObjectCrops`
turns a detection dataset with keypoints into one sample per object; `TopDownCrop` is the
loader augmentation that cuts and resizes the crop, in training with the paper's jitter
(rotation +-30 degrees, scale 0.75..1.25, horizontal flips).

Coordinates are continuous pixels, as everywhere in the data layer: pixel `i` covers
`[i, i + 1)`. A crop is an affine map (a 2x3 matrix `m`) of image coordinates to crop
coordinates, `crop_xy = xy @ m[:, :2].T + m[:, 2]`; `uncrop_points` maps crop coordinates
(e.g. predicted keypoints) back to the original image.

Example:
    >>> from kerascv_suite.data import make_shapes
    >>> objects = ObjectCrops(make_shapes(100, 128), classes=("square", "triangle"))
    >>> crop = TopDownCrop(64, margin=1.25, train=True)
    >>> sample = crop(objects[0], seed=3)   # image (64, 64, 3), boxes (1, 4), keypoints (1, 4, 3)
"""

from __future__ import annotations

import numpy as np


class ObjectCrops:
    """One sample per object: the object's whole image, its box and its keypoints.

    Objects of the kept classes with at least one labelled keypoint become samples; all
    classes are then one, `class_names`. The source images are decoded once and kept in
    memory (the built-in shapes set regenerates an image per access), so this suits small
    datasets.

    Sample contract (`self[i]`):
        image: uint8 `(height, width, channels)`, the object's full source image.
        boxes: float32 `(1, 4)` absolute `xyxy` pixels of the object.
        classes: int32 `(1,)` zeros.
        keypoints: float32 `(1, num_keypoints, 3)` `(x, y, visibility)` in image pixels.
        path: the source image's path.

    Args:
        dataset: a detection dataset whose samples have `keypoints` (e.g.
            `make_shapes(...)`), with `class_names`.
        classes: class names whose objects are kept (names the dataset lacks are ignored).
        class_names: the names of the crops' keypoint heatmap channels (`class_names` and
            `num_classes` of this dataset).
    """

    task = "keypoints"

    def __init__(self, dataset, classes, class_names=("keypoint",)):
        keep = [dataset.class_names.index(n) for n in classes if n in dataset.class_names]
        self.class_names = list(class_names)
        self.skipped = getattr(dataset, "skipped", None)
        self.images, self.objects = [], []
        for index in range(len(dataset)):
            sample = dataset[index]
            for row, class_id in enumerate(sample["classes"]):
                if int(class_id) in keep and (sample["keypoints"][row, :, 2] > 0).any():
                    self.objects.append((len(self.images), sample["boxes"][row],
                                         sample["keypoints"][row], sample["path"]))
            self.images.append(sample["image"])

    @property
    def num_classes(self):
        return len(self.class_names)

    def __len__(self):
        return len(self.objects)

    def __getitem__(self, index):
        image_index, box, keypoints, path = self.objects[index]
        return {"image": self.images[image_index], "boxes": box[None],
                "classes": np.zeros(1, np.int32), "keypoints": keypoints[None], "path": path}


class TopDownCrop:
    """Crops a square around the sample's single box and resizes it, moving the box and the
    keypoints along; in training with random rotation, scale and horizontal flip.

    The crop is centred on the box with side `margin * max(box width, box height)`
    (divided by the random scale factor in training). Keypoints that leave the crop become
    unlabelled (visibility 0); the output box is the bounding box of the input box's moved
    corners. The map applied by `crop(sample, seed)` is
    `crop.matrix(sample["boxes"][0], np.random.default_rng(seed))`.

    Picklable (plain attributes), so loader worker processes can run it.

    Args:
        size: output side in pixels.
        margin: crop side / the box's longer side.
        train: jitter (True) or a centred crop (False).
        rotate: largest rotation in degrees (the paper: 30).
        scale: `(low, high)` range of the crop scale factor (the paper: 0.75..1.25).
        hflip: probability of a horizontal flip.

    Call arguments:
        sample: a sample dict with `image` `(height, width, channels)` (or `(height, width)`),
            `boxes` `(1, 4)` `xyxy` and `keypoints` `(1, num_keypoints, 3)`.
        seed: integer seed of the jitter.

    Returns:
        The sample with `image` uint8 `(size, size, channels)`, `boxes` float32 `(1, 4)`
        and `keypoints` float32 `(1, num_keypoints, 3)` in crop pixels; other keys as given.
    """

    def __init__(self, size, margin=1.25, train=False, rotate=30.0, scale=(0.75, 1.25),
                 hflip=0.5):
        self.size = int(size)
        self.margin = float(margin)
        self.train = bool(train)
        self.rotate = float(rotate or 0.0)
        self.scale = tuple(scale) if scale else (1.0, 1.0)
        self.hflip = float(hflip or 0.0)

    @property
    def output_size(self):
        return (self.size, self.size)

    def matrix(self, box, rng=None):
        """The affine map of continuous image coordinates to crop coordinates.

        Args:
            box: `(4,)` `xyxy` box in image pixels.
            rng: a `numpy.random.Generator` for the training jitter; None (or
                `train=False`) gives the centred crop.

        Returns:
            float64 `(2, 3)` matrix `m`: `crop_xy = xy @ m[:, :2].T + m[:, 2]`.
        """
        import cv2

        x0, y0, x1, y1 = (float(v) for v in box)
        side = self.margin * max(x1 - x0, y1 - y0, 1.0)
        angle, factor, flip = 0.0, 1.0, False
        if self.train and rng is not None:
            angle = rng.uniform(-self.rotate, self.rotate)
            factor = rng.uniform(*self.scale)
            flip = rng.random() < self.hflip
        half = self.size / 2
        # Rotate and scale about the box centre, then move it to the crop centre.
        m = cv2.getRotationMatrix2D(((x0 + x1) / 2, (y0 + y1) / 2), angle,
                                    self.size / (side * factor))
        m[:, 2] += [half - (x0 + x1) / 2, half - (y0 + y1) / 2]
        if flip:
            m[0] = -m[0]
            m[0, 2] += self.size
        return m

    def __call__(self, sample, seed=0):
        import cv2

        m = self.matrix(sample["boxes"][0], np.random.default_rng(seed))
        # warpAffine maps pixel centres (index i = continuous i + 0.5).
        shift = np.array([[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1]])
        to_index = np.array([[1.0, 0, -0.5], [0, 1.0, -0.5]])
        pixel_map = to_index @ np.vstack([m, [0, 0, 1]]) @ shift
        image = cv2.warpAffine(sample["image"], pixel_map, (self.size, self.size),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        if image.ndim == 2:
            image = image[..., None]
        keypoints = np.array(sample["keypoints"], np.float32)
        xy = crop_points(keypoints[..., :2], m)
        inside = ((xy >= 0) & (xy < self.size)).all(-1)
        keypoints[..., :2] = xy
        keypoints[..., 2] = np.where(inside, keypoints[..., 2], 0)
        x0, y0, x1, y1 = sample["boxes"][0]
        corners = crop_points(np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]]), m)
        box = np.concatenate([corners.min(0), corners.max(0)])[None].astype(np.float32)
        return {**sample, "image": image, "keypoints": keypoints, "boxes": box}


def crop_points(points, matrix):
    """Image coordinates to crop coordinates.

    Args:
        points: `(..., 2)` `(x, y)` continuous image pixels.
        matrix: `(2, 3)` crop map, e.g. `TopDownCrop.matrix(box)`.

    Returns:
        `(..., 2)` crop pixels (float64 unless `points` is float32).
    """
    matrix = np.asarray(matrix)
    return np.asarray(points) @ matrix[:, :2].T + matrix[:, 2]


def uncrop_points(points, matrix):
    """Crop coordinates (e.g. predicted keypoints) back to the original image.

    Args:
        points: `(..., 2)` `(x, y)` continuous crop pixels.
        matrix: the `(2, 3)` crop map the crop was made with.

    Returns:
        float64 `(..., 2)` image pixels: `uncrop_points(crop_points(p, m), m) == p`.
    """
    inverse = np.linalg.inv(np.vstack([np.asarray(matrix, np.float64), [0, 0, 1]]))[:2]
    return crop_points(np.asarray(points, np.float64), inverse)
