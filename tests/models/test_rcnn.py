"""R-CNN: selective search on shapes, fine-tuning step, SVMs + box regression, contract."""

import numpy as np
import pytest
from keras.utils import bounding_boxes

from kerascv_suite import models
from kerascv_suite.data.builtin.shapes import make_shapes
from kerascv_suite.models.detection import (RCNN, fit_svms_and_regressors, selective_search,
                                            selective_search_batch)
from tests.models.test_faster_rcnn import check_detections, synthetic_batch, train_and_roundtrip


def shapes_batch(count=3, max_boxes=4):
    ds = make_shapes(count=count, image_size=64, seed=0)
    images = np.stack([ds[i]["image"] for i in range(count)])
    boxes = np.zeros((count, max_boxes, 4), "float32")
    classes = -np.ones((count, max_boxes), "int32")
    for i in range(count):
        n = len(ds[i]["boxes"])
        boxes[i, :n], classes[i, :n] = ds[i]["boxes"], ds[i]["classes"]
    return images, boxes, classes


def test_selective_search_recalls_shapes():
    # Uijlings et al. 2013 report ~0.98 recall at IoU 0.5 on VOC with their "quality" mode;
    # on the plain shapes images every object must be found at IoU >= 0.5.
    images, boxes, classes = shapes_batch()
    for image, gt, cls in zip(images, boxes, classes):
        found = selective_search(image)
        assert found.ndim == 2 and found.shape[1] == 4 and len(found) > 0
        assert np.all(found[:, 2] > found[:, 0]) and np.all(found[:, 3] > found[:, 1])
        iou = np.asarray(bounding_boxes.compute_iou(gt[cls >= 0], found,
                                                    bounding_box_format="xyxy"))
        assert np.all(iou.max(axis=1) >= 0.5)


@pytest.mark.backend
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_rcnn_pipeline_on_shapes(tmp_path):
    spec = models.get_spec("rcnn")
    model = spec.build(**spec.test_overrides)
    assert isinstance(model, RCNN)
    images, boxes, classes = shapes_batch()
    props = selective_search_batch(images, max_proposals=64)
    batch = {"images": images[:2].astype("float32"), "proposals": props[:2],
             "boxes": boxes[:2], "classes": classes[:2]}
    model.compile(optimizer="sgd")
    loss = model.fit(batch, batch_size=2, verbose=0).history["loss"][0]
    assert np.isfinite(loss) and loss > 0  # softmax fine-tuning (paper sec. 2.3)
    counts = fit_svms_and_regressors(model, images, boxes, classes, props)
    present = {int(c) for c in classes[classes >= 0]}
    for c in present:
        assert counts["positives"][c] > 0 and counts["negatives"][c] > 0
    assert np.any(model.svm.get_weights()[0] != 0)
    assert np.any(model.bbox_pred.get_weights()[0] != 0)
    out = train_and_roundtrip(model, batch, tmp_path,
                              predict_input={"images": batch["images"],
                                             "proposals": props[:2]})
    check_detections(out, 2, 10, 3, 64)


@pytest.mark.backend
def test_rcnn_images_only_smoke():
    spec = models.get_spec("rcnn")
    model = spec.build(**spec.test_overrides)
    check_detections(model.predict(synthetic_batch()["images"], verbose=0), 2, 10, 3, 64)
