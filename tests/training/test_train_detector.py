"""The detection task on the runner (tiny models, shapes at 64 px)."""

import csv

import keras
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from kerascv_suite.data import RecordDataset
from kerascv_suite.models import build
from kerascv_suite.tasks import get_task, load_config, load_run_config
from kerascv_suite.tasks.detection import check_class_ids
from kerascv_suite.training import runner

YOLO = {"model": "yolo_v1_tiny", "model_options": {"width": 0.25, "fc_units": 32}}
PROPOSAL_MODELS = {
    "fast_rcnn_small": {"head_units": [16, 16], "pool_size": 2, "max_detections": 10},
    "rcnn_small": {"warp_size": 32, "context_padding": 2, "fc_units": [16, 16],
                   "max_detections": 10},
}


def _quiet(*_):
    pass


def run(config, **kwargs):
    return runner.run(get_task(config.task), config, **kwargs)


def _config(tmp_path, **overrides):
    values = {"image_size": 64, "shapes_count": 16, "batch_size": 8, "workers": 0,
              "num_samples": 2, "max_proposals": 32, "epochs": 1,
              "tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", **YOLO, **overrides}
    return load_config(None, **values)


def _rows(run_dir):
    with open(run_dir / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_trains_resumes_and_logs_validation_ap(tmp_path, monkeypatch, mlflow_uri):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "runs" / "detect" / "yolo"
    first = run(_config(tmp_path, shapes_count=8, run_dir=str(run_dir)), log=_quiet)
    assert first.epochs_trained == 1
    result = run(load_run_config(run_dir, epochs=2), resume=True, log=_quiet)
    assert result.epochs_trained == 2 and result.mlflow_run_id == first.mlflow_run_id
    rows = _rows(run_dir)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    # The logged validation AP is the evaluation path's on the epoch's weights: scoring the
    # last checkpoint on the val split again gives the epoch-2 row's numbers exactly.
    config = load_run_config(run_dir)
    task = get_task("detection")
    data = task.load_data(config, run_dir, _quiet)
    try:
        last = keras.saving.load_model(run_dir / "checkpoints" / "last.keras")
        stats = task.scores(last, config, data, "val").coco.as_dict()
    finally:
        data.close()
    for key, stat in (("val_ap", "AP"), ("val_ap50", "AP50"), ("val_ap75", "AP75")):
        assert float(rows[1][key]) == pytest.approx(stats[stat], abs=1e-6)
    client = MlflowClient(mlflow_uri)
    history = client.get_metric_history(result.mlflow_run_id, "val_ap50")
    assert sorted(m.step for m in history) == [1, 2]
    metrics = client.get_run(result.mlflow_run_id).data.metrics
    for name in ("test_ap", "test_ap50", "test_ap75", "test_ap_small", "test_ar100",
                 "test_ar_large", "test_voc07_map", "test_voc_map"):
        assert name in metrics
    report = {a.path for a in client.list_artifacts(result.mlflow_run_id, "report")}
    assert {"report/pr_curves.png", "report/confusion.png", "report/samples.png",
            "report/curves.png", "report/val_ap.png"} <= report
    # The logged YOLO model is the detector (decode + NMS), not the raw heads.
    from kerascv_suite.models.resolve import get_model

    detector = get_model(result.model_uri)
    out = detector.predict(np.zeros((1, 64, 64, 3), "float32"), verbose=0)
    assert {"boxes", "scores", "classes", "num_detections"} <= set(out)


def test_model_with_other_classes_is_an_error(tmp_path, monkeypatch, mlflow_uri):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "five.keras"
    build("yolo_v1_tiny", num_classes=5, input_shape=(64, 64, 3), width=0.25,
          fc_units=32).save(path)
    with pytest.raises(ValueError, match=r"predicts 5 classes.*has 3.*circle"):
        run(_config(tmp_path, weights=str(path)), log=_quiet)
    keras.backend.clear_session()


def test_class_ids_are_checked_up_front():
    records = [{"path": "images/a.png", "classes": np.array([0, 1])},
               {"path": "images/b.png", "classes": np.array([1, 7])}]
    train = RecordDataset(records, ["cat", "dog"], "detection")
    with pytest.raises(ValueError, match=r"images/b.png: class ids \[7\].*0..1"):
        check_class_ids({"train": train}, ["cat", "dog"])
    good = RecordDataset(records[:1], ["cat", "dog"], "detection")
    check_class_ids({"train": good}, ["cat", "dog"])
    other = RecordDataset(records[:1], ["dog", "cat"], "detection")
    with pytest.raises(ValueError, match=r"val split's classes \['dog', 'cat'\]"):
        check_class_ids({"train": good, "val": other}, ["cat", "dog"])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("model", sorted(PROPOSAL_MODELS))
def test_proposal_models_train_on_cached_selective_search(model, tmp_path, monkeypatch,
                                                          mlflow_uri):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    result = run(_config(tmp_path, model=model, model_options=PROPOSAL_MODELS[model],
                         shapes_count=8, run_dir=str(run_dir)), log=_quiet)
    assert {p.name for p in (run_dir / "proposals").iterdir()} == {
        "train.npz", "val.npz", "test.npz"}
    assert _rows(run_dir)[0]["val_ap50"] != ""
    assert "test_ap50" in result.test_metrics
    if model == "rcnn_small":
        # Stage 3 (SVMs + box regressors) is fitted after training and saved.
        best = keras.saving.load_model(run_dir / "checkpoints" / "best.keras")
        assert np.any(best.svm.get_weights()[0] != 0)


def test_detection_confusion_matrix_by_hand():
    from kerascv_suite.training.detection_report import detection_confusion_matrix

    # Ground truth: circle, square, triangle. Detections: the circle found as a circle, the
    # square found as a triangle, a square where nothing is (background row), and a
    # low-score duplicate (below 0.25: ignored); the triangle is missed (background column).
    gt_boxes = [np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], float)]
    boxes = [np.array([[0, 0, 10, 10], [20, 20, 30, 30], [60, 60, 70, 70], [0, 0, 10, 10]],
                      float)]
    matrix = detection_confusion_matrix(gt_boxes, [np.array([0, 1, 2])], boxes,
                                        [np.array([0.9, 0.8, 0.7, 0.1])],
                                        [np.array([0, 2, 1, 1])], 3)
    np.testing.assert_array_equal(matrix, [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1],
                                           [0, 1, 0, 0]])
