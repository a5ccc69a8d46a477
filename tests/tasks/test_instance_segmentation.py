"""Instance segmentation as a task: one evaluation path for box and mask AP (perfect and
wrong predictions scored by hand), and a Mask R-CNN run whose logged test metrics equal
`kcv evaluate`'s pipeline on its best.keras."""

import cv2
import numpy as np
from mlflow.tracking import MlflowClient

from kerascv_suite.data import make_shapes
from kerascv_suite.tasks import get_task, load_config
from kerascv_suite.tasks.instance_segmentation import (MASK_METRICS, InstanceAugmenter,
                                                       evaluate_instances,
                                                       instance_augmenter)
from kerascv_suite.training.runner import run


class ReplayDetector:
    """Answers each batch with the ground truth of `dataset` at the input size (boxes and
    masks resized as the model would see them), with classes shifted by `class_shift`."""

    needs_proposals = False

    def __init__(self, dataset, input_size, class_shift=0, max_detections=5):
        self.dataset, self.input_size = dataset, input_size
        self.class_shift, self.max_detections, self.seen = class_shift, max_detections, 0

    def predict(self, images):
        n, (h, w) = self.max_detections, self.input_size
        out = {"boxes": np.zeros((len(images), n, 4), "float32"),
               "scores": np.zeros((len(images), n), "float32"),
               "classes": -np.ones((len(images), n), "int32"),
               "num_detections": np.zeros(len(images), "int32"),
               "masks": np.zeros((len(images), n, h, w), "float32")}
        for row in range(len(images)):
            if self.seen >= len(self.dataset):
                break  # the padding of the last batch
            sample = self.dataset[self.seen]
            self.seen += 1
            height, width = sample["image"].shape[:2]
            k = len(sample["boxes"])
            out["boxes"][row, :k] = sample["boxes"] * ([w / width, h / height] * 2)
            out["scores"][row, :k] = np.linspace(0.9, 0.5, k)
            out["classes"][row, :k] = (sample["classes"] + self.class_shift) % 3
            out["num_detections"][row] = k
            for j, mask in enumerate(sample["instance_masks"]):
                out["masks"][row, j] = cv2.resize(mask.astype("float32"), (w, h),
                                                  interpolation=cv2.INTER_LINEAR)
        return out


def test_one_evaluation_path_scores_boxes_and_masks():
    data = make_shapes(6, 64, seed=2, split="val")
    perfect = evaluate_instances(ReplayDetector(data, (64, 64)), data, data.class_names, 4)
    metrics = perfect.metrics()
    assert metrics["ap"] == metrics["mask_ap"] == 1.0  # every instance found exactly
    assert {f"mask_{name}" for name in MASK_METRICS.values()} <= set(metrics)
    wrong = evaluate_instances(ReplayDetector(data, (64, 64), class_shift=1), data,
                               data.class_names, 4).metrics()
    assert wrong["ap50"] == wrong["mask_ap50"] == 0.0  # right masks of the wrong class
    # Input half the image size: masks come back to the image's own pixels (96 px).
    data = make_shapes(6, 96, seed=2, split="val")
    resized = evaluate_instances(ReplayDetector(data, (48, 48)), data, data.class_names,
                                 4).metrics()
    assert resized["mask_ap50"] == 1.0 and resized["mask_ap"] > 0.9


def test_instance_augmenter_moves_masks_with_their_boxes():
    sample = make_shapes(1, 64, seed=4)[0]
    augmenter = instance_augmenter("detection", (48, 48), scale=(0.5, 1.0))
    assert isinstance(augmenter, InstanceAugmenter)
    for seed in range(4):
        out = augmenter(sample, seed=seed)
        assert out["mask"].shape == (48, 48) and len(out["boxes"]) == len(out["classes"])
        for row, box in enumerate(out["boxes"]):
            ys, xs = np.nonzero(out["mask"] == row + 1)
            tight = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            np.testing.assert_allclose(tight, box, atol=2.0)  # nearest-neighbour masks
        assert out["mask"].max() == len(out["boxes"])


def test_mask_rcnn_run_logs_box_and_mask_ap_equal_to_the_evaluate_pipeline(tmp_path, mlflow_uri):
    from kerascv_suite.pipelines.evaluate_detector import DetectorEvalConfig
    from kerascv_suite.pipelines.evaluate_detector import run as evaluate

    uri = mlflow_uri
    config = load_config(
        model="mask_rcnn_small", data="shapes", shapes_count=8, image_size=64, epochs=1,
        batch_size=4, workers=0, score_threshold=0.0, project=str(tmp_path / "runs"),
        tracking_uri=uri, model_options={
            "rpn_channels": 16, "head_units": [16, 16], "anchor_scales": [8, 16, 32],
            "rpn_pre_nms_top_k": [64, 64], "rpn_post_nms_top_k": [16, 8],
            "max_detections": 8, "mask_channels": 4, "mask_convs": 1,
            "box_sampler": {"batch_size_per_image": 16, "positive_fraction": 0.25}})
    assert config.task == "instance_segmentation" and config.monitor == "val_mask_ap50"
    result = run(get_task(config.task), config, log=lambda _: None)
    logged = MlflowClient(uri).get_run(result.mlflow_run_id).data.metrics
    for name in ("val_mask_ap50", "val_ap50", "test_mask_ap", "test_ap"):
        assert name in logged, sorted(logged)
    best = result.run_dir / "checkpoints" / "best.keras"
    report = evaluate(DetectorEvalConfig(str(best), data="shapes", shapes_count=1,
                                         seed=config.seed, split="test"),
                      log=lambda _: None).as_dict()
    assert report["images"] == 1
    for stat, name in MASK_METRICS.items():
        assert abs(report["mask"][stat] - logged[f"test_mask_{name}"]) <= 1e-9, stat
        assert abs(report[stat] - logged[f"test_{name}"]) <= 1e-9, stat
