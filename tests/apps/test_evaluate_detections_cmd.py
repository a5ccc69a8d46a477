"""`kcv evaluate-detections`: JSON keys and values against pycocotools, --voc, bad files."""

import contextlib
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner

from kerascv_suite.apps.cli import main

STAT_ORDER = ["AP", "AP50", "AP75", "APs", "APm", "APl",
              "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


def _case():
    rng = np.random.default_rng(0)
    images = [{"id": i} for i in range(1, 11)]
    annotations, results = [], []
    for image in images:
        for _ in range(3):
            c = int(rng.integers(1, 4))
            w, h = rng.uniform(10, 150, 2)
            x, y = rng.uniform(0, 200, 2)
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"],
                                "category_id": c, "bbox": [x, y, w, h], "area": w * h,
                                "iscrowd": int(rng.random() < 0.1)})
            results.append({"image_id": image["id"], "category_id": c,
                            "bbox": [x + rng.normal(0, 5), y + rng.normal(0, 5), w, h],
                            "score": float(rng.random())})
    gt = {"images": images, "annotations": annotations,
          "categories": [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]}
    return gt, results


@pytest.fixture
def files(tmp_path):
    gt, results = _case()
    gt_path, det_path = tmp_path / "gt.json", tmp_path / "dets.json"
    gt_path.write_text(json.dumps(gt))
    det_path.write_text(json.dumps(results))
    return gt_path, det_path


def test_json_output_names_and_values_match_pycocotools(files):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_path, det_path = files
    result = CliRunner().invoke(main, ["evaluate-detections", str(gt_path), str(det_path),
                                       "--format", "json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert list(stats) == STAT_ORDER
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt_path))
        evaluator = COCOeval(coco, coco.loadRes(str(det_path)), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    np.testing.assert_allclose([stats[k] for k in STAT_ORDER], evaluator.stats, atol=1e-6)


def test_voc_flag_adds_both_voc_maps(files):
    gt_path, det_path = files
    result = CliRunner().invoke(main, ["evaluate-detections", str(gt_path), str(det_path),
                                       "--format", "json", "--voc"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert list(stats) == STAT_ORDER + ["VOC07_mAP50", "VOC_mAP50"]
    assert 0.0 < stats["VOC07_mAP50"] <= 1.0 and 0.0 < stats["VOC_mAP50"] <= 1.0


def test_table_output(files):
    result = CliRunner().invoke(main, ["evaluate-detections", *map(str, files)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("AP ")


def test_bad_files_name_the_file(tmp_path, files):
    gt_path, det_path = files
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = CliRunner().invoke(main, ["evaluate-detections", str(gt_path), str(broken)])
    assert result.exit_code == 2 and "broken.json" in result.output
    missing = tmp_path / "missing.json"
    result = CliRunner().invoke(main, ["evaluate-detections", str(missing), str(det_path)])
    assert result.exit_code == 2 and "missing.json" in result.output
    not_gt = tmp_path / "list.json"
    not_gt.write_text("[]")
    result = CliRunner().invoke(main, ["evaluate-detections", str(not_gt), str(det_path)])
    assert result.exit_code == 2 and "list.json" in result.output


def test_unknown_category_ids_are_an_error_not_zero_map(tmp_path, files):
    gt_path, det_path = files
    results = json.loads(det_path.read_text())
    for r in results:
        r["category_id"] -= 1  # 0-based ids against a 1-based ground truth
    shifted = tmp_path / "zero_based.json"
    shifted.write_text(json.dumps(results))
    result = CliRunner().invoke(main, ["evaluate-detections", str(gt_path), str(shifted)])
    assert result.exit_code == 2
    assert "zero_based.json" in result.output and "[0]" in result.output
