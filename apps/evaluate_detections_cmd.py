"""`kcv evaluate-detections`: score a COCO results file against a COCO ground truth."""

import json

import click


def _load_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"{path} is not valid JSON: {e}", param_hint=what) from e
    except (OSError, UnicodeDecodeError) as e:
        raise click.BadParameter(f"cannot read {path}: {e}", param_hint=what) from e


def _voc_metrics(ground_truth, detections):
    """VOC07 11-point and all-point mAP@0.5 from COCO dicts (crowd/difficult boxes ignored)."""
    import numpy as np

    from kerascv_suite.metrics.detection import voc_evaluate

    image_index = {img["id"]: i for i, img in enumerate(ground_truth["images"])}
    category_index = {c["id"]: k for k, c in enumerate(
        sorted(ground_truth["categories"], key=lambda c: c["id"]))}
    n = len(image_index)
    gt_boxes, gt_classes, gt_difficult = ([[] for _ in range(n)] for _ in range(3))
    det_boxes, det_scores, det_classes = ([[] for _ in range(n)] for _ in range(3))
    for a in ground_truth.get("annotations", []):
        i = image_index[a["image_id"]]
        x, y, w, h = a["bbox"]
        gt_boxes[i].append([x, y, x + w, y + h])
        gt_classes[i].append(category_index[a["category_id"]])
        gt_difficult[i].append(bool(a.get("difficult", a.get("iscrowd", 0))))
    for d in detections:
        i = image_index[d["image_id"]]
        x, y, w, h = d["bbox"]
        det_boxes[i].append([x, y, x + w, y + h])
        det_scores[i].append(d["score"])
        det_classes[i].append(category_index[d["category_id"]])
    arrays = [np.asarray(v, float).reshape(-1, 4) for v in gt_boxes], gt_classes
    dets = [np.asarray(v, float).reshape(-1, 4) for v in det_boxes], det_scores, det_classes
    out = {}
    for key, use_07 in (("VOC07_mAP50", True), ("VOC_mAP50", False)):
        out[key] = voc_evaluate(*arrays, *dets, len(category_index), gt_difficult=gt_difficult,
                                use_07_metric=use_07)["mAP"]
    return out


@click.command("evaluate-detections")
@click.argument("ground_truth", metavar="GT.json", type=click.Path(dir_okay=False))
@click.argument("detections", metavar="DETECTIONS.json", type=click.Path(dir_okay=False))
@click.option("--format", "output_format", type=click.Choice(["table", "json"]),
              default="table", show_default=True, help="Human-readable table or JSON.")
@click.option("--voc", is_flag=True,
              help="Also report PASCAL VOC mAP@0.5 (2007 11-point and 2010+ all-point); "
                   "crowd or 'difficult' ground truth is ignored.")
@click.option("--iou-type", type=click.Choice(["bbox", "segm"]), default="bbox",
              show_default=True,
              help="Box IoU, or mask IoU on the 'segmentation' fields (RLE results).")
def evaluate_detections_command(ground_truth, detections, output_format, voc, iou_type):
    """Score COCO-format DETECTIONS.json against a COCO ground truth GT.json.

    Prints the 12 COCO box (or, with --iou-type segm, mask) statistics in pycocotools' order
    (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl), computed exactly as
    pycocotools' COCOeval.

    \b
    Examples:
      kcv evaluate-detections instances_val.json detections.json
      kcv evaluate-detections gt.json dets.json --voc --format json
      kcv evaluate-detections instances_val.json segm_results.json --iou-type segm
    """
    from kerascv_suite.metrics.detection import coco_evaluate

    gt = _load_json(ground_truth, "GT.json")
    results = _load_json(detections, "DETECTIONS.json")
    if isinstance(results, dict) and "annotations" in results:
        results = results["annotations"]  # a COCO dataset file used as results
    if not isinstance(gt, dict) or not {"images", "categories"} <= set(gt):
        raise click.BadParameter(f"{ground_truth} is not a COCO ground truth (needs 'images', "
                                 "'annotations' and 'categories').", param_hint="GT.json")
    if not isinstance(results, list):
        raise click.BadParameter(f"{detections} is not a COCO results list "
                                 "([{image_id, category_id, bbox, score}, ...]).",
                                 param_hint="DETECTIONS.json")
    if voc and iou_type == "segm":
        raise click.UsageError("--voc scores boxes (PASCAL VOC mAP@0.5 has no mask form); "
                               "run it without --iou-type segm.")
    try:
        report = coco_evaluate(gt, results, iou_type=iou_type).as_dict()
        if voc:
            report.update(_voc_metrics(gt, results))
    except ValueError as e:
        raise click.UsageError(f"{detections} vs {ground_truth}: {e}") from e
    if output_format == "json":
        click.echo(json.dumps(report, indent=2))
        return
    width = max(len(k) for k in report)
    for name, value in report.items():
        click.echo(f"{name:<{width}}  {value:.4f}")


COMMANDS = (evaluate_detections_command,)
