"""`kcv train-segmenter`, `kcv segment` and `kcv evaluate-segmentation` end to end."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from kerascv_suite.apps.cli import main
from kerascv_suite.data import decode_image, read_mask, write_image, write_mask

from tests.mlflow_store import copy_store

TINY = ["--model", "unet", "--width", "0.0625", "--image-size", "32", "--batch-size", "8",
        "--shapes-count", "24", "--workers", "0", "--lr", "0.01"]


def _invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mlflow_template):
    """A tiny U-Net trained 1 epoch, resumed to 2 and registered as `seg-tiny@champion`."""
    root = tmp_path_factory.mktemp("seg")
    uri = copy_store(mlflow_template, root)
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    run_dir = root / "runs" / "segment" / "tiny"
    _invoke("train-segmenter", *TINY, "--epochs", "1", "--run-dir", run_dir)
    result = _invoke("train-segmenter", "--resume", run_dir, "--epochs", "2", "--register",
                     "seg-tiny", "--alias", "champion")
    yield {"root": root, "uri": uri, "run_dir": run_dir, "output": result.output}
    mp.undo()


def test_help_does_not_import_keras():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from kerascv_suite.apps.cli import main\n"
        "for c in ('train-segmenter', 'segment', 'evaluate-segmentation'):\n"
        "    r = CliRunner().invoke(main, [c, '--help'])\n"
        "    assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_options_name_the_value(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["train-segmenter", "--loss", "focal"])
    assert result.exit_code == 2 and "focal" in result.output
    result = CliRunner().invoke(main, ["train-segmenter", "--data", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "nope" in result.output


def test_train_logs_dataset_level_metrics_and_registers(trained):
    with open(trained["run_dir"] / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]  # resumed, no epoch twice
    for key in ("val_miou", "val_pixel_accuracy", "val_iou_background", "val_iou_circle"):
        assert key in rows[0]
    assert "Resuming" in trained["output"] and "test mIoU" in trained["output"]
    client = MlflowClient(tracking_uri=trained["uri"])
    version = client.get_model_version_by_alias("seg-tiny", "champion")
    run = client.get_run(version.run_id)
    assert {"val_miou", "val_iou_square", "test_miou", "test_iou_triangle"} <= set(
        run.data.metrics)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_miou")] == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert "report/overlay_0.png" in artifacts and "report/confusion.png" in artifacts
    # Per-epoch overlays of fixed validation images, numbered across the resume.
    overlays = {a.path for a in client.list_artifacts(run.info.run_id, "overlays")}
    assert overlays == {"overlays/epoch_001.png", "overlays/epoch_002.png"}
    grid = decode_image(trained["run_dir"] / "overlays" / "epoch_002.png")
    assert grid.shape == (4 * 32, 3 * 32, 3)  # 4 images, each image | truth | prediction


def _photo_folder(folder):
    from skimage import data

    folder.mkdir()
    photos = {"astronaut": data.astronaut(), "coffee": data.coffee(), "chelsea": data.chelsea()}
    for name, image in photos.items():
        write_image(folder / f"{name}.jpg", image)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (folder / "notes.txt").write_text("not an image")
    return {n: im.shape[:2] for n, im in photos.items()}


def test_segment_real_photos_skips_bad_files_and_reruns(trained, tmp_path):
    sizes = _photo_folder(tmp_path / "photos")
    out = tmp_path / "out"
    result = _invoke("segment", tmp_path / "photos", "--model", "models:/seg-tiny@champion",
                     "--out", out, "--batch-size", "2")
    assert "3 written, 0 already done, 2 skipped" in result.output
    assert "broken.png" in result.output and "notes.txt" in result.output
    for name, (height, width) in sizes.items():
        mask = read_mask(out / "masks" / f"{name}.png")
        assert mask.shape == (height, width) and mask.max() < 4
        record = json.loads((out / "fractions" / f"{name}.json").read_text())
        assert record["height"] == height and sum(record["fractions"].values()) == \
            pytest.approx(1.0)
        assert (out / "overlays" / f"{name}.jpg").is_file()
    with open(out / "fractions.csv") as f:
        assert len(list(csv.DictReader(f))) == 3
    assert "broken.png" in (out / "skipped.txt").read_text()
    before = (out / "masks" / "coffee.png").stat().st_mtime_ns
    again = _invoke("segment", tmp_path / "photos", "--model", "models:/seg-tiny@champion",
                    "--out", out)
    assert "0 written, 3 already done" in again.output
    assert (out / "masks" / "coffee.png").stat().st_mtime_ns == before
    redo = _invoke("segment", tmp_path / "photos", "--model",
                   trained["run_dir"] / "checkpoints" / "best.keras", "--out", out,
                   "--overwrite", "--class-names", "background,circle,square,triangle")
    assert "3 written" in redo.output
    record = json.loads((out / "fractions" / "chelsea.json").read_text())
    assert set(record["fractions"]) == {"background", "circle", "square", "triangle"}


def test_segment_real_photos_tiled(trained, tmp_path):
    sizes = _photo_folder(tmp_path / "photos")
    out = tmp_path / "out"
    result = _invoke("segment", tmp_path / "photos", "--model", "models:/seg-tiny@champion",
                     "--out", out, "--mode", "tile", "--tile-overlap", "0.25",
                     "--batch-size", "32")
    assert "3 written" in result.output and "(3 tiled)" in result.output
    for name, (height, width) in sizes.items():
        assert read_mask(out / "masks" / f"{name}.png").shape == (height, width)
    # An image missing one of its outputs (an interrupted run) is redone, and only it.
    (out / "overlays" / "coffee.jpg").unlink()
    again = _invoke("segment", tmp_path / "photos", "--model", "models:/seg-tiny@champion",
                    "--out", out, "--mode", "tile")
    assert "1 written, 2 already done" in again.output
    assert (out / "overlays" / "coffee.jpg").is_file()


def _pointwise_model(size):
    """Softmax of the image's own RGB values (a 1x1 identity convolution): the class map is
    `argmax` over the channels, for a tile or the whole image alike (no spatial context),
    so tiled segmentation must reproduce it exactly, pixel for pixel."""
    import keras

    inputs = keras.Input((size, size, 3))
    identity = keras.initializers.Constant(np.eye(3).reshape(1, 1, 3, 3))
    x = keras.layers.Conv2D(3, 1, use_bias=False, kernel_initializer=identity)(inputs)
    return keras.Model(inputs, keras.layers.Activation("softmax")(x))


def test_tiling_reproduces_whole_image_prediction(tmp_path):
    from kerascv_suite.pipelines.segment_folder import SegmentConfig, run

    rng = np.random.default_rng(0)
    # Odd sizes, one smaller than a tile (reflect-padded) and one of a single pixel.
    images = {"odd": (97, 131), "small": (20, 50), "pixel": (1, 1), "wide": (40, 300)}
    images = {k: rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for k, hw in images.items()}
    for name, image in images.items():
        write_image(tmp_path / "in" / f"{name}.png", image)  # lossless
    model = _pointwise_model(32)
    for mode, tiled in (("tile", 4), ("auto", 2)):  # auto: only odd and wide exceed 64
        out = tmp_path / mode
        result = run(SegmentConfig(str(tmp_path / "in"), "pointwise", out=str(out), mode=mode,
                                   batch_size=5, tile_overlap=0.3), model=model,
                     log=lambda *a: None)
        assert (result.written, result.tiled) == (4, tiled)
        for name, image in images.items():
            mask = read_mask(out / "masks" / f"{name}.png")
            if mode == "tile" or name in ("odd", "wide"):
                np.testing.assert_array_equal(mask, image.argmax(-1), err_msg=name)
            assert mask.shape == image.shape[:2]


def test_tile_layout_covers_the_image():
    from kerascv_suite.models.segmentation.inference import cut_tiles, tile_origins

    # 97 px, tiles of 32 with 25% overlap: stride round(32 * 0.75) = 24, and
    # ceil((97 - 32) / 24) + 1 = 4 windows covering 3 * 24 + 32 = 104 px.
    assert tile_origins(97, 32, 0.25) == ([0, 24, 48, 72], 104)
    assert tile_origins(20, 32, 0.25) == ([0], 32)
    assert tile_origins(32, 32, 0.5) == ([0], 32)
    # 5 px, tiles of 4 without overlap: 2 windows covering 8 px, the image centred at 1.
    image = np.arange(5 * 5, dtype=np.uint8).reshape(5, 5, 1)
    tiles, layout = cut_tiles(image, (4, 4), 0.0)
    assert tiles.shape == (4, 4, 4, 1) and layout.padded == (8, 8)
    assert layout.offset == (1, 1) and layout.origins == [(0, 0), (0, 4), (4, 0), (4, 4)]
    np.testing.assert_array_equal(tiles[0, 1:, 1:, 0], image[:3, :3, 0])
    # Reflected without repeating the edge: padded row -1 is image row 1.
    np.testing.assert_array_equal(tiles[0, 0, 1:, 0], image[1, :3, 0])
    np.testing.assert_array_equal(tiles[3, :2, :2, 0], image[3:, 3:, 0])


def _random_pointwise_models(tile):
    """The same random 1x1 convolution + softmax at a fixed `tile` input (for tiling) and at
    any input size (for a direct predict on the whole image)."""
    import keras

    kernel = np.random.default_rng(1).normal(size=(1, 1, 3, 4)) / 100
    models = []
    for shape in ((tile, tile, 3), (None, None, 3)):
        inputs = keras.Input(shape)
        conv = keras.layers.Conv2D(4, 1, kernel_initializer=keras.initializers.Constant(kernel),
                                   bias_initializer=keras.initializers.Constant([0, .5, 0, -.5]))
        models.append(keras.Model(inputs, keras.layers.Softmax()(conv(inputs))))
    return models


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
def test_segment_image_tiled_equals_a_direct_predict(overlap):
    from kerascv_suite.models.segmentation import segment_image

    tiled_model, whole_model = _random_pointwise_models(16)
    rng = np.random.default_rng(0)
    for height, width in ((37, 53), (9, 70), (16, 16)):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        direct = whole_model.predict(image[None].astype("float32"), verbose=0)[0].argmax(-1)
        mask = segment_image(tiled_model, image, mode="tile", tile_overlap=overlap,
                             batch_size=3)
        assert mask.dtype == np.uint8 and mask.shape == (height, width)
        assert len(np.unique(direct)) > 1  # a map that could be stitched wrong
        np.testing.assert_array_equal(mask, direct, err_msg=f"{height}x{width}")


def test_segment_image_resize_mode_and_any_size_models():
    from kerascv_suite.models.segmentation import segment_image

    tiled_model, whole_model = _random_pointwise_models(16)
    rng = np.random.default_rng(2)
    # 2x2 blocks of one colour: halved to 16x16 (bilinear samples mid-block) and the class
    # map enlarged (nearest) back to 32x32, every block keeps its colour's class.
    image = np.repeat(np.repeat(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), 2, 0), 2, 1)
    direct = whole_model.predict(image[None].astype("float32"), verbose=0)[0].argmax(-1)
    for model, size in ((tiled_model, None), (whole_model, 16)):
        mask = segment_image(model, image, mode="resize", image_size=size)
        np.testing.assert_array_equal(mask, direct)
        auto = segment_image(model, image, mode="auto", image_size=size)  # 32 <= 2 * 16
        np.testing.assert_array_equal(auto, direct)
    with pytest.raises(ValueError, match="image_size"):
        segment_image(whole_model, image)
    with pytest.raises(ValueError, match="Received: mode='crop'"):
        segment_image(tiled_model, image, mode="crop")


def test_mask_stitcher_takes_tiles_in_any_order():
    from kerascv_suite.models.segmentation.inference import MaskStitcher, cut_tiles

    rng = np.random.default_rng(3)
    probabilities = rng.random((23, 31, 5)).astype(np.float32)
    tiles, layout = cut_tiles(probabilities, (8, 8), 0.25)
    in_order, reversed_order = MaskStitcher((23, 31), layout), MaskStitcher((23, 31), layout)
    results = [in_order.add(i, tile) for i, tile in enumerate(tiles)]
    assert all(r is None for r in results[:-1])
    backwards = [reversed_order.add(i, tiles[i]) for i in reversed(range(len(tiles)))]
    np.testing.assert_array_equal(results[-1], probabilities.argmax(-1))
    np.testing.assert_array_equal(backwards[-1], results[-1])
    # A model output smaller than its tile is stretched over it.
    half = MaskStitcher((4, 4), cut_tiles(np.zeros((4, 4, 1)), (4, 4), 0.0)[1])
    small = np.zeros((2, 2, 3), np.float32)
    small[..., 2] = 1
    np.testing.assert_array_equal(half.add(0, small), np.full((4, 4), 2))


def test_class_counts_few_and_many_classes():
    from kerascv_suite.models.segmentation.inference import class_counts

    mask = np.array([[0, 1, 1], [3, 3, 3]], np.uint8)
    assert class_counts(mask, 4) == [1, 2, 0, 3]
    assert class_counts(mask, 20) == [1, 2, 0, 3] + [0] * 16


def test_evaluate_segmentation_matches_reference(tmp_path):
    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(0)
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    truths, preds = [], []
    for i in range(4):
        gt = rng.integers(0, 3, (20, 30)).astype(np.uint8)
        gt[rng.random(gt.shape) < 0.1] = 255
        pred = np.where(rng.random(gt.shape) < 0.7, np.where(gt == 255, 0, gt),
                        rng.integers(0, 3, gt.shape)).astype(np.uint8)
        write_mask(gt_dir / f"img{i}.png", gt)
        write_mask(pred_dir / f"img{i}.png", pred)
        truths.append(gt)
        preds.append(pred)
    write_mask(gt_dir / "missing.png", truths[0])
    write_mask(pred_dir / "extra.png", preds[0])
    write_mask(gt_dir / "small.png", truths[0])
    write_mask(pred_dir / "small.png", preds[0][:10])
    result = _invoke("evaluate-segmentation", gt_dir, pred_dir, "--num-classes", 3,
                     "--format", "json")
    report = json.loads(result.output)
    # Reference: sklearn's confusion matrix over all non-void pixels of the matched pairs.
    gt_all = np.concatenate([t.ravel() for t in truths])
    pred_all = np.concatenate([p.ravel() for p in preds])
    keep = gt_all != 255
    matrix = confusion_matrix(gt_all[keep], pred_all[keep], labels=[0, 1, 2])
    iou = np.diag(matrix) / (matrix.sum(0) + matrix.sum(1) - np.diag(matrix))
    assert report["miou"] == pytest.approx(iou.mean())
    assert report["pixel_accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
    assert [report["per_class_iou"][str(c)] for c in range(3)] == pytest.approx(iou)
    assert report["matched"] == 4
    assert report["missing_predictions"] == ["missing"]
    assert report["extra_predictions"] == ["extra"]
    assert report["mismatched"][0]["stem"] == "small"
    table = _invoke("evaluate-segmentation", gt_dir, pred_dir, "--num-classes", 3,
                    "--class-names", "a,b,c")
    assert "IoU c" in table.output and "mismatched small" in table.output
