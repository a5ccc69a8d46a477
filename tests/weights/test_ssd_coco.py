"""ssd300_coco = torchvision's ssd300_vgg16: a random-weight torchvision SSD300, converted
as `kcv weights convert` does, gives torchvision's own detections (boxes, scores, labels) on
real photos; `kcv detect --weights <entry>` loads it through the catalog and writes COCO
class names.

Random weights need two adjustments to make the comparison meaningful: the heads are scaled
down (raw, their logits reach +-1000 and every box covers the image) and the background
logit raised, so that a few dozen (box, class) pairs per image clear torchvision's 0.01
score threshold and NMS has overlapping same-class boxes to suppress. The photos are
300 x 300 already, so torchvision's resize is the identity and both sides see one input.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kerascv_suite import models, weights
from kerascv_suite.apps.detect_cmd import detect_command
from kerascv_suite.models.detection import make_inference_model
from kerascv_suite.models.detection.ssd import TORCHVISION_SSD_MEAN, TORCHVISION_SSD_SCALES
from kerascv_suite.models.weights import convert_checkpoint
from kerascv_suite.weights import catalog
from tests.weights.helpers import photos, sha256

SIZE = 300
# The catalog entry of torchvision's COCO weights (to ship as kerascv_suite/weights/
# catalog_detection.yaml once `kcv weights list` prints a box AP metric).
CATALOG_FILE = Path(__file__).with_name("catalog_detection.yaml")
# Head scaling of the random checkpoint (see the module docstring).
CLS_SCALE, BACKGROUND_BIAS, LOC_SCALE = 1 / 20, 26.0, 1 / 50
# kcv detect's --score-threshold in the test (its default, 0.25, keeps none of these).
DETECT_THRESHOLD = 0.05
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

    (entry,) = catalog.read_catalog(CATALOG_FILE)
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
    """`(checkpoint path, images, torchvision's detections, head outputs, default boxes)` on
    two photos."""
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
    heads = {k: v.numpy() for k, v in heads.items()}
    return checkpoint, images, detections, heads, anchors[0].numpy()


def assert_same_detections(ours, theirs, image):
    """Same detections, matched after sorting by score: labels, scores (1e-4) and boxes."""
    n = int(ours["num_detections"][image])
    order = np.argsort(-ours["scores"][image, :n], kind="stable")
    assert n == len(theirs["scores"])
    np.testing.assert_array_equal(ours["classes"][image, :n][order], theirs["labels"])
    np.testing.assert_allclose(ours["scores"][image, :n][order], theirs["scores"],
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ours["boxes"][image, :n][order], theirs["boxes"], atol=1e-2)


def test_converted_ssd300_coco_gives_torchvision_detections(reference, tmp_path, monkeypatch):
    import torch
    from keras import ops

    from kerascv_suite.bounding_box import BoxCoder, ssd_default_boxes

    checkpoint, images, detections, heads, anchors = reference
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(json.dumps({"entries": [{**ENTRY, "hash": sha256(checkpoint)}]}))
    monkeypatch.setenv(weights.CATALOG_ENV, str(catalog))
    # What `kcv weights convert FILE --model ssd300_coco` runs before it saves the weights
    # (its CLI is tested on squeezenet in test_weights_cmd.py; the catalog's download and
    # cache path below).
    model = convert_checkpoint(models.get_spec("ssd300_coco"), checkpoint)
    raw = np.asarray(model.predict(images, verbose=0))

    # The comparison means something: per image, dozens of pairs clear the threshold
    # (fewer than SSDDecoder's 400 candidates, so its top-400 pairs are torchvision's top
    # 400 per class), and NMS suppresses some of them.
    scores = torch.softmax(torch.from_numpy(heads["cls_logits"]), -1).numpy()[..., 1:]
    candidates = (scores > 0.01).sum(axis=(1, 2))
    kept = [len(d["scores"]) for d in detections]
    assert all(20 <= c <= 400 for c in candidates), candidates
    assert all(5 <= k < c for k, c in zip(kept, candidates)), (kept, candidates)

    # Raw heads: class logits equal with our slot 0 (pinned) left out; the offsets decode,
    # against each side's default boxes, into the same boxes (conv11_2's are reparametrized).
    np.testing.assert_allclose(np.delete(raw[..., 4:], 1, axis=-1), heads["cls_logits"],
                               rtol=1e-4, atol=1e-3 * np.abs(heads["cls_logits"]).max())
    assert np.all(raw[..., 5] < -9000)
    decoder = models.describe(model)["decoder"]["default_boxes"]
    ours = BoxCoder.from_variances().decode(ssd_default_boxes(**decoder), raw[..., :4])
    theirs = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0)).decode(anchors, heads["bbox_regression"])
    np.testing.assert_allclose(ops.convert_to_numpy(ours), ops.convert_to_numpy(theirs),
                               atol=1e-2)

    # The detector's decode + NMS, on the raw outputs already computed.
    decode = make_inference_model(model).get_layer("detections")
    found = {k: ops.convert_to_numpy(v) for k, v in decode(raw).items()}
    for image, theirs in enumerate(detections):
        assert_same_detections(found, theirs, image)


def test_kcv_detect_with_catalog_weights_writes_coco_names(reference, catalog, served, tmp_path):
    import cv2

    checkpoint, images, detections, _, _ = reference
    (served[1] / CHECKPOINT).write_bytes(checkpoint.read_bytes())
    catalog({**ENTRY, "hash": sha256(checkpoint)})
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "photo0.png"), images[0][..., ::-1])  # one photo: CPU time
    out = tmp_path / "detected"
    result = CliRunner().invoke(detect_command, [str(folder), "--model", "ssd300_coco",
                                      "--weights", "ssd300_coco.random", "--out", str(out),
                                      "--score-threshold", str(DETECT_THRESHOLD)])
    assert result.exit_code == 0, result.output
    written = json.loads((out / "detections.json").read_text())
    names = weights.class_names("coco91")
    category = {c["id"]: c["name"] for c in written["categories"]}
    found = {}
    for annotation in written["annotations"]:
        image = next(i for i in written["images"] if i["id"] == annotation["image_id"])
        found.setdefault(image["file_name"], []).append(category[annotation["category_id"]])
    theirs = detections[0]
    expected = sorted(names[label] for label, s in zip(theirs["labels"], theirs["scores"])
                      if s > DETECT_THRESHOLD)
    assert len(expected) >= 2 and sorted(found["photo0.png"]) == expected
