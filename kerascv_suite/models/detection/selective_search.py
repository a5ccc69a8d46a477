"""Selective search region proposals (Uijlings, van de Sande, Gevers, Smeulders, "Selective
Search for Object Recognition", IJCV 2013), in numpy on scikit-image's Felzenszwalb
segmentation.

Why not OpenCV's `cv2.ximgproc.segmentation`: it ships only in opencv-contrib, whose wheel
writes into the same `cv2/` folder as the opencv-python-headless that albumentations needs,
so installing both is order-dependent. This module implements the paper's hierarchical
grouping instead: initial regions from Felzenszwalb & Huttenlocher (2004), then greedy
merging of the most similar pair of neighbours by the sum of colour, texture, size and fill
similarities (paper sec. 3.2), with every region of the hierarchy a proposal.
"""

import numpy as np

COLOUR_BINS = 25  # per channel, paper sec. 3.2
TEXTURE_BINS = 10  # per orientation and channel
ORIENTATIONS = 8


def _histograms(labels, values, num_regions, bins_per_feature, num_features):
    """L1-normalized `(num_regions, num_features * bins)` histograms; `values` are bin ids
    `(H, W, num_features)`."""
    offsets = np.arange(num_features) * bins_per_feature
    index = labels[..., None] * (num_features * bins_per_feature) + values + offsets
    hist = np.bincount(index.ravel(), minlength=num_regions * num_features * bins_per_feature)
    hist = hist.reshape(num_regions, -1).astype(np.float64)
    return hist / np.maximum(hist.sum(axis=1, keepdims=True), 1.0)


def _texture_bins(image):
    """Gaussian-derivative responses in 8 orientations, quantized to 10 bins per channel
    (the paper's SIFT-like texture measure)."""
    from skimage.filters import gaussian

    smooth = gaussian(image.astype(np.float64), sigma=1.0, channel_axis=-1)
    gy, gx = np.gradient(smooth, axis=(0, 1))
    angles = np.arange(ORIENTATIONS) * (2 * np.pi / ORIENTATIONS)
    resp = (gx[..., None] * np.cos(angles) + gy[..., None] * np.sin(angles))  # H, W, C, O
    resp = np.maximum(resp, 0.0)
    top = max(float(resp.max()), 1e-12)
    bins = np.minimum((resp / top * TEXTURE_BINS).astype(np.int64), TEXTURE_BINS - 1)
    return bins.reshape(*image.shape[:2], -1)


def _similarity(a, b, regions, image_size):
    ra, rb = regions[a], regions[b]
    colour = np.minimum(ra["colour"], rb["colour"]).sum()
    texture = np.minimum(ra["texture"], rb["texture"]).sum()
    size = 1.0 - (ra["size"] + rb["size"]) / image_size
    x0, y0 = min(ra["box"][0], rb["box"][0]), min(ra["box"][1], rb["box"][1])
    x1, y1 = max(ra["box"][2], rb["box"][2]), max(ra["box"][3], rb["box"][3])
    fill = 1.0 - ((x1 - x0) * (y1 - y0) - ra["size"] - rb["size"]) / image_size
    return colour + texture + size + fill


def _group(image, scale, sigma, min_size, rng):
    from skimage.segmentation import felzenszwalb

    labels = felzenszwalb(image, scale=scale, sigma=sigma, min_size=min_size)
    _, labels = np.unique(labels, return_inverse=True)
    labels = labels.reshape(image.shape[:2])
    n = int(labels.max()) + 1
    height, width = labels.shape
    colour_bins = np.minimum(image.astype(np.int64) * COLOUR_BINS // 256, COLOUR_BINS - 1)
    colour = _histograms(labels, colour_bins, n, COLOUR_BINS, image.shape[2])
    texture = _histograms(labels, _texture_bins(image), n, TEXTURE_BINS,
                          image.shape[2] * ORIENTATIONS)
    ys, xs = np.mgrid[:height, :width]
    flat = labels.ravel()
    sizes = np.bincount(flat, minlength=n).astype(np.float64)
    boxes = np.stack([np.full(n, width), np.full(n, height), np.zeros(n), np.zeros(n)], 1)
    np.minimum.at(boxes[:, 0], flat, xs.ravel())
    np.minimum.at(boxes[:, 1], flat, ys.ravel())
    np.maximum.at(boxes[:, 2], flat, xs.ravel() + 1)
    np.maximum.at(boxes[:, 3], flat, ys.ravel() + 1)
    regions = {i: {"colour": colour[i], "texture": texture[i], "size": sizes[i],
                   "box": boxes[i].tolist(), "level": 0} for i in range(n)}

    # Neighbours: regions touching horizontally or vertically.
    pairs = np.concatenate([np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], 1),
                            np.stack([labels[:-1].ravel(), labels[1:].ravel()], 1)])
    pairs = np.unique(np.sort(pairs[pairs[:, 0] != pairs[:, 1]], axis=1), axis=0)
    image_size = float(height * width)
    sims = {(int(a), int(b)): _similarity(int(a), int(b), regions, image_size) for a, b in pairs}

    while sims:
        a, b = max(sims, key=sims.get)
        new = len(regions)
        ra, rb = regions[a], regions[b]
        size = ra["size"] + rb["size"]
        regions[new] = {
            "colour": (ra["colour"] * ra["size"] + rb["colour"] * rb["size"]) / size,
            "texture": (ra["texture"] * ra["size"] + rb["texture"] * rb["size"]) / size,
            "size": size,
            "box": [min(ra["box"][0], rb["box"][0]), min(ra["box"][1], rb["box"][1]),
                    max(ra["box"][2], rb["box"][2]), max(ra["box"][3], rb["box"][3])],
            "level": max(ra["level"], rb["level"]) + 1,
        }
        neighbours = {j for pair in sims if a in pair or b in pair for j in pair} - {a, b}
        sims = {pair: s for pair, s in sims.items() if a not in pair and b not in pair}
        for j in neighbours:
            sims[(j, new)] = _similarity(j, new, regions, image_size)

    # Paper sec. 3.3: rank by hierarchy position times a random number, so large regions
    # from the top of the hierarchy tend to come first but the order stays diverse.
    top = max(r["level"] for r in regions.values())
    ranks = [(top - r["level"] + 1) * rng.random() for r in regions.values()]
    return [regions[i]["box"] for i in np.argsort(ranks)]


def selective_search(image, scales=(100, 300), sigma=0.8, min_size=20, max_proposals=2000,
                     min_box_size=4, seed=0):
    """Region proposals of one image by selective search.

    Args:
        image: `(height, width, 3)` uint8 RGB.
        scales: Felzenszwalb `k` values; each gives its own hierarchy (the paper's
            diversification over thresholds), and the proposals are pooled.
        sigma: Gaussian smoothing of the segmentation (0.8 in the paper).
        min_size: smallest initial segment, pixels.
        max_proposals: keep at most this many, in ranked order.
        min_box_size: drop proposals narrower or shorter than this, pixels.
        seed: seed of the random ranking.

    Returns:
        `(num_proposals, 4)` float32 xyxy pixel boxes, without duplicates.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    rng = np.random.default_rng(seed)
    boxes, seen = [], set()
    for scale in scales:
        for box in _group(image, scale, sigma, min_size, rng):
            key = tuple(int(v) for v in box)
            if key in seen or key[2] - key[0] < min_box_size or key[3] - key[1] < min_box_size:
                continue
            seen.add(key)
            boxes.append(key)
    return np.asarray(boxes[:max_proposals], np.float32).reshape(-1, 4)


def selective_search_batch(images, max_proposals=2000, **kwargs):
    """Selective search over a batch: `(batch, max_proposals, 4)` float32, zero-padded.

    The padded array is what `FastRCNN` and `RCNN` take as `proposals` (zero rows are
    ignored).
    """
    out = np.zeros((len(images), max_proposals, 4), np.float32)
    for i, image in enumerate(images):
        boxes = selective_search(image, max_proposals=max_proposals, **kwargs)
        out[i, :len(boxes)] = boxes
    return out
