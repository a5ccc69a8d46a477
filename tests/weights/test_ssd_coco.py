"""ssd300_coco = torchvision's ssd300_vgg16: `kcv detect photos/ --model ssd300_coco
--weights <entry>` with a random-weight torchvision checkpoint in the catalog (served on
loopback, verified, converted as `kcv weights convert` does, cached) writes torchvision's
own detections (boxes, scores, labels = COCO category ids) of real photos, with COCO's class
names.

Random weights need two adjustments to make the comparison meaningful: the heads are scaled
down (raw, their logits reach +-1000 and every box covers the image) and the background
logit raised, so that a few dozen (box, class) pairs per image clear torchvision's 0.01
score threshold and NMS has overlapping same-class boxes to suppress. The photos are
300 x 300 already, so torchvision's resize is the identity and both sides see one input.
"""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from kerascv_suite import models, weights
from kerascv_suite.apps.detect_cmd import detect_command
from kerascv_suite.models.detection.ssd import TORCHVISION_SSD_MEAN, TORCHVISION_SSD_SCALES
from tests.weights.helpers import photos, sha256

SIZE = 300
# Head scaling of the random checkpoint (see the module docstring).
CLS_SCALE, BACKGROUND_BIAS, LOC_SCALE = 1 / 20, 26.0, 1 / 50
# torchvision's score_thresh, given to kcv detect (whose default is 0.25).
SCORE_THRESHOLD = 0.01
CHECKPOINT = "ssd300_vgg16-random.pth"
ENTRY = dict(name="ssd300_coco.random", model="ssd300_coco", default=True,
             source="torchvision", url=f"https://example.invalid/models/{CHECKPOINT}",
             hash_algorithm="sha256", size_mb=136.0, license="BSD-3-Clause",
             format="torch_state_dict", converter="ssd300_vgg16",
             preprocessing="torchvision_ssd", input_shape=[SIZE, SIZE, 3], num_classes=91,
             classes="coco91", metric={"dataset": "none", "box_map": 0.0,
                                       "citation": "random weights"})


def test_catalog_entry_matches_torchvision_meta(torchvision):
    import inspect

    entry = weights.get_entry("ssd300_coco.tv_coco")
    published = torchvision.models.detection.SSD300_VGG16_Weights.COCO_V1
    assert (entry.model, entry.converter, entry.classes) == ("ssd300_coco", "ssd300_vgg16",
                                                             "coco91")
    assert entry.url == published.url
    assert published.url.rsplit("-", 1)[1] == f"{entry.hash}.pth"
    assert entry.size_mb == published.meta["_file_size"]
    assert entry.metric["box_ap"] == published.meta["_metrics"]["COCO-val2017"]["box_map"]
    assert entry.class_names == list(published.meta["categories"])
    assert entry.num_classes == len(published.meta["categories"])
    # Preprocessing, default boxes and post-processing: the values in torchvision's source.
    source = inspect.getsource(torchvision.models.detection.ssd)
    assert '"image_mean": [0.48235, 0.45882, 0.40784]' in source
    assert f"scales={list(TORCHVISION_SSD_SCALES)}" in source
    assert "steps=[8, 16, 32, 64, 100, 300]" in source
    assert list(TORCHVISION_SSD_MEAN) == [0.48235, 0.45882, 0.40784]
    spec = inspect.signature(torchvision.models.detection.ssd.SSD).parameters
    info = models.describe(models.build("ssd300_coco", width=1 / 16))
    decoder = info["decoder"]
    assert (decoder["score_threshold"], decoder["iou_threshold"], decoder["max_detections"],
            decoder["pre_nms_top_k"]) == tuple(spec[k].default for k in (
                "score_thresh", "nms_thresh", "detections_per_img", "topk_candidates"))
    assert info["preprocessing"] == entry.preprocessing


def random_ssd300(torchvision, seed=0):
    """torchvision's ssd300_vgg16 with seeded random weights (He-scaled kernels, conv4_3
    scale near torchvision's 20) and the head scaling above, in eval mode."""
    import torch

    with torch.device("meta"):  # skips torchvision's own (discarded) initialization
        module = torchvision.models.detection.ssd300_vgg16(weights=None, weights_backbone=None)
    module = module.to_empty(device="cpu").eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            values = torch.randn(tensor.shape, generator=generator)
            if tensor.ndim > 1:
                values *= (2.0 / np.prod(tensor.shape[1:])) ** 0.5
            elif name.endswith("scale_weight"):
                values = 20.0 + values
            else:
                values *= 0.1
            tensor.copy_(values)
        for conv in module.head.classification_head.module_list:
            conv.weight.mul_(CLS_SCALE)
            conv.bias.mul_(CLS_SCALE)
            conv.bias.view(-1, 91)[:, 0] += BACKGROUND_BIAS
        for conv in module.head.regression_head.module_list:
            conv.weight.mul_(LOC_SCALE)
            conv.bias.mul_(LOC_SCALE)
    return module


@pytest.fixture(scope="module")
def reference(torchvision, tmp_path_factory):
    """`(checkpoint path, images, torchvision's detections, class logits)` on two photos."""
    import torch

    module = random_ssd300(torchvision)
    checkpoint = tmp_path_factory.mktemp("ssd") / CHECKPOINT
    torch.save(module.state_dict(), checkpoint)
    images = photos(SIZE)[:2]
    batch = [torch.from_numpy(image.transpose(2, 0, 1).copy()).float() / 255 for image in images]
    with torch.no_grad():  # SSD.forward in eval mode, keeping the head outputs
        transformed, _ = module.transform(batch)
        features = list(module.backbone(transformed.tensors).values())
        heads = module.head(features)
        anchors = module.anchor_generator(transformed, features)
        detections = module.postprocess_detections(heads, anchors, transformed.image_sizes)
        detections = module.transform.postprocess(detections, transformed.image_sizes,
                                                  [(SIZE, SIZE)] * len(batch))
    detections = [{k: v.numpy() for k, v in d.items()} for d in detections]
    return checkpoint, images, detections, heads["cls_logits"].numpy()


def by_class_and_score(labels, scores, boxes):
    """Detections sorted by class, then score (descending), then x1: a matching order that
    does not depend on how NMS outputs are ordered."""
    order = np.lexsort((np.round(boxes[:, 0], 1), -np.round(scores, 4), labels))
    return labels[order], scores[order], boxes[order]


def test_kcv_detect_with_coco_weights_gives_torchvision_detections(reference, catalog, served,
                                                                     tmp_path):
    import cv2
    import torch

    checkpoint, images, detections, cls_logits = reference
    # The comparison means something: per image, dozens of pairs clear the threshold
    # (fewer than SSDDecoder's 400 candidates, so its top-400 pairs are torchvision's top
    # 400 per class), and NMS suppresses some of them.
    scores = torch.softmax(torch.from_numpy(cls_logits), -1).numpy()[..., 1:]
    candidates = (scores > SCORE_THRESHOLD).sum(axis=(1, 2))
    kept = [len(d["scores"]) for d in detections]
    assert all(20 <= c <= 400 for c in candidates), candidates
    assert all(5 <= k < c for k, c in zip(kept, candidates)), (kept, candidates)

    (served[1] / CHECKPOINT).write_bytes(checkpoint.read_bytes())
    catalog({**ENTRY, "hash": sha256(checkpoint)})
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"photo{i}.png"), image[..., ::-1])
    out = tmp_path / "detected"
    # Downloads the checkpoint from the loopback server, verifies, converts (what `kcv
    # weights convert` runs), caches, builds ssd300_coco with it and detects at
    # torchvision's score threshold.
    result = CliRunner().invoke(detect_command, [str(folder), "--model", "ssd300_coco",
                                                 "--weights", "ssd300_coco.random", "--out",
                                                 str(out), "--score-threshold",
                                                 str(SCORE_THRESHOLD)])
    assert result.exit_code == 0, result.output
    written = json.loads((out / "detections.json").read_text())
    names = weights.class_names("coco91")
    assert written["categories"] == [{"id": c, "name": n} for c, n in enumerate(names)]
    ids = {i["file_name"]: i["id"] for i in written["images"]}
    for i, theirs in enumerate(detections):
        found = [a for a in written["annotations"] if a["image_id"] == ids[f"photo{i}.png"]]
        assert len(found) == len(theirs["scores"])
        x, y, w, h = np.asarray([a["bbox"] for a in found], np.float64).T
        ours = by_class_and_score(np.asarray([a["category_id"] for a in found]),
                                  np.asarray([a["score"] for a in found]),
                                  np.stack([x, y, x + w, y + h], axis=-1))
        theirs = by_class_and_score(theirs["labels"], theirs["scores"], theirs["boxes"])
        np.testing.assert_array_equal(ours[0], theirs[0])  # COCO category ids
        np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-4, atol=1e-5)  # 5 decimals
        np.testing.assert_allclose(ours[2], theirs[2], atol=0.03)
    # The annotated images name the classes with COCO's names.
    record = json.loads(next((out / "detections").glob("photo0*.json")).read_text())
    assert [d["category"] for d in record["detections"]] == [
        names[d["category_id"]] for d in record["detections"]]
