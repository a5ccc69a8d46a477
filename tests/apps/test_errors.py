"""One-line errors: each reproducer of issue 12 exits 2 (bad input) or 1 (runtime failure)
with a message naming the file / entry and what to do, and no traceback unless --debug."""

import errno
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kerascv_suite.apps.cli import main
from kerascv_suite.apps.errors import to_click_error

from tests.mlflow_store import copy_store


def kcv(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def assert_one_line(result, code, *parts):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output, result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1, result.output
    for part in parts:
        assert part in error[0], error[0]
    return error[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory, mlflow_template):
    """One sqlite MLflow store for the module, a copy of the session's migrated one."""
    return copy_store(mlflow_template, tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """Broken .keras files: a Lambda naming an unimportable function, truncated weights, a
    truncated archive, a text file."""
    import zipfile

    folder = tmp_path_factory.mktemp("models")

    def double(x):
        return x * 2

    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Lambda(double)(inputs)).save(folder / "lambda.keras")
    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Dense(2)(inputs)).save(folder / "ok.keras")
    with zipfile.ZipFile(folder / "ok.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(folder / "badweights.keras", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data[: len(data) // 3] if name.endswith(".h5") else data)
    (folder / "truncated.keras").write_bytes((folder / "ok.keras").read_bytes()[:300])
    (folder / "notzip.keras").write_text("hello")
    return folder


def test_broken_model_file_names_file_and_cause(model_files):
    for name, parts in [
        ("lambda.keras", ["function 'double'", "cannot be imported", "must be importable"]),
        ("badweights.keras", ["weights cannot be read", "truncated"]),
        ("truncated.keras", ["not a .keras archive", "not a zip file"]),
        ("notzip.keras", ["not a .keras archive", "5 bytes"]),
    ]:
        path = model_files / name
        line = assert_one_line(kcv("evaluate", "--model", path), 2, str(path), *parts)
        assert "File not found" not in line


def test_debug_shows_the_traceback(model_files, monkeypatch):
    result = kcv("--debug", "evaluate", "--model", model_files / "notzip.keras")
    assert result.exit_code == 2 and "Traceback" in result.output
    assert "ModelFileError" in result.output
    monkeypatch.setenv("KCV_DEBUG", "1")
    assert "Traceback" in kcv("evaluate", "--model", model_files / "notzip.keras").output


def test_folder_without_class_folders(tmp_path):
    folder = tmp_path / "flat"
    folder.mkdir()
    keras.utils.save_img(folder / "a.png", np.zeros((8, 8, 3), "uint8"))
    result = kcv("evaluate", "--model", "lenet5", "--data", folder)
    assert_one_line(result, 2, str(folder), "class sub-folders")
    assert "Traceback" in kcv("--debug", "evaluate", "--model", "lenet5", "--data",
                              folder).output


def test_unknown_mlflow_model_names_the_store(store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    result = kcv("evaluate", "--model", "models:/doesnotexist@champion")
    assert_one_line(result, 2, "doesnotexist", store, "kcv ui", "MLFLOW_TRACKING_URI")


def test_bad_data_path_and_model_name_fail_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    result = kcv("train", "--model", "lenet5", "--data", "nothere")
    assert result.exit_code == 2 and "no file or folder" in result.output
    assert str(tmp_path / "nothere") in result.output and "'digits'" in result.output
    result = kcv("train", "--model", "lenett5")
    assert result.exit_code == 2 and "Did you mean: lenet5" in result.output
    result = kcv("train-detector", "--data", "digits")
    assert result.exit_code == 2 and "built-in set of other tasks" in result.output
    assert sorted(os.listdir(tmp_path)) == []  # no mlflow.db, no runs/
    assert "Run folder" not in result.output


def test_a_model_that_cannot_be_built_leaves_no_run_folder(tmp_path, monkeypatch):
    # The data is fine, the model is refused (unet has no pretrainable backbone): one line,
    # and the folder made for the run goes again, so a retry gets the same name.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    result = kcv("train", "--model", "unet", "--shapes-count", "5", "--epochs", "1",
                 "--backbone-weights", "imagenet")
    assert result.exit_code == 2 and "has no VGG16 or ResNet-50 backbone" in result.output
    assert not (tmp_path / "runs").exists()


def test_run_folder_write_errors(tmp_path, monkeypatch):
    """A full disk and a read-only run folder, as model.save raises them inside the runner
    (the tests run as root here, so chmod cannot make a folder read-only)."""
    from kerascv_suite.training import runner

    monkeypatch.chdir(tmp_path)
    for code, message in [
        (errno.ENOSPC, "No space left on the device writing R/checkpoints/.last.keras; free "
                       "some space or write the run elsewhere with --run-dir"),
        (errno.EROFS, "Cannot write R/checkpoints/.last.keras (Read-only file system); "
                      "choose a writable folder with --run-dir"),
        (errno.EACCES, "Cannot write R/checkpoints/.last.keras (Permission denied)"),
    ]:
        def fail(*args, code=code, **kwargs):
            raise OSError(code, os.strerror(code), "R/checkpoints/.last.keras")

        monkeypatch.setattr(runner, "run", fail)
        assert_one_line(kcv("train", "--model", "lenet5", "--epochs", "1"), 1, message)


def test_error_kinds_map_to_exit_codes():
    from kerascv_suite.data.errors import AnnotationError, BadImageError, UnsafePathError
    from kerascv_suite.training.errors import TrackingUnavailable, TrainingDiverged

    bad_input = [
        (AnnotationError("a/b.xml", "object 2", "unknown class 'dog'"),
         "a/b.xml (entry object 2): unknown class 'dog'; fix the entry"),
        (UnsafePathError("ann.json", "image 3", "'../../x.jpg' escapes the dataset root"),
         "must stay inside the dataset folder"),
        (BadImageError("x.jpg", "truncated or corrupt data"), "replace or remove the file"),
        (FileNotFoundError(errno.ENOENT, "No such file", "x.yaml"), "x.yaml"),
        (ValueError("bad\nvalue"), "bad value"),
    ]
    for error, text in bad_input:
        converted = to_click_error(error)
        assert converted.exit_code == 2 and text in converted.format_message(), error
        assert "\n" not in converted.format_message()
    for error in (TrainingDiverged("loss is nan"), TrackingUnavailable("no server"),
                  RuntimeError("boom")):
        assert to_click_error(error).exit_code == 1
    assert "RuntimeError: boom (run with --debug" in to_click_error(RuntimeError("boom"))\
        .format_message()


def test_a_missing_optional_package_names_its_pip_extra():
    # A plain `pip install .` has no ONNX / LiteRT packages: `kcv export --format onnx` and
    # `kcv detect --model ssd.onnx` then say which extra to install.
    missing = to_click_error(ModuleNotFoundError("No module named 'onnx'", name="onnx"))
    assert missing.exit_code == 1
    assert missing.format_message() == (
        "This needs the optional package 'onnx', which is not installed; install it with "
        "`pip install 'kerascv-suite[export]'` (in a checkout: `pip install '.[export]'`)")
    assert "[jax]" in to_click_error(ModuleNotFoundError(name="jax.numpy")).format_message()
    other = to_click_error(ModuleNotFoundError("No module named 'nope'", name="nope"))
    assert "ModuleNotFoundError" in other.format_message()


def test_quiet_start_up_and_exit_code_in_a_real_process(model_files):
    """One process start: TensorFlow is imported (loading the model), no start-up noise is
    printed, the error is one line with exit status 2."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY", "GLOG_minloglevel",
                        "KCV_DEBUG")}
    env["KERAS_BACKEND"] = "tensorflow"
    code = "from kerascv_suite.apps.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "evaluate", "--model",
         str(model_files / "notzip.keras")],
        capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    noise = [line for line in lines
             if any(word in line for word in ("absl", "cuInit", "cudart", "oneDNN",
                                              "cpu_feature_guard", "I0000", "E0000"))]
    assert not noise, lines
    assert lines == [f"Error: Cannot load the model file {model_files / 'notzip.keras'}: not a "
                     ".keras archive (not a zip file, 5 bytes: truncated, or saved in another "
                     "format such as .h5 or SavedModel); save it with model.save('name.keras')"]
    assert "Traceback" not in done.stderr


def test_verbose_restores_the_start_up_logging(monkeypatch):
    from kerascv_suite.apps import cli

    startup = cli.StartupNoise()
    monkeypatch.delenv("GRPC_VERBOSITY", raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")  # the user's own setting is kept
    startup.quiet()
    assert os.environ["GRPC_VERBOSITY"] == "ERROR" and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"
    startup.restore()
    assert "GRPC_VERBOSITY" not in os.environ and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"


def test_segment_detect_helper_refuses_an_empty_folder(tmp_path):
    import click

    from kerascv_suite.apps.options import check_not_empty

    (tmp_path / ".hidden").write_text("x")
    with pytest.raises(click.BadParameter, match="holds no image files"):
        check_not_empty(str(tmp_path))
    (tmp_path / "a.jpg").write_text("x")
    check_not_empty(str(tmp_path))


@pytest.fixture(scope="module")
def broken_detection_sets(tmp_path_factory):
    """Tiny shapes sets in VOC and COCO, each copy broken one way."""
    import shutil

    from kerascv_suite.data import make_shapes, write_dataset

    root = tmp_path_factory.mktemp("detection")
    for split in ("train", "val", "test"):
        ds = make_shapes(count=3, image_size=32, seed=0, split=split)
        write_dataset(ds, root / "voc", "voc", split)
        write_dataset(ds, root / "coco", "coco", split)
    sets = {}
    for name, fmt in (("unknown", "voc"), ("xml", "voc"), ("json", "coco"),
                      ("escape", "coco")):
        sets[name] = root / name
        shutil.copytree(root / fmt, sets[name])
    xml = sets["unknown"] / "Annotations" / "train_000000.xml"
    text = xml.read_text()
    xml.write_text(text.replace(f"<name>{text.split('<name>')[1].split('<')[0]}<",
                                "<name>dog<", 1))
    (sets["xml"] / "Annotations" / "train_000001.xml").write_text("<annotation><object>")
    (sets["json"] / "annotations" / "instances_train.json").write_text("{")
    coco = sets["escape"] / "annotations" / "instances_train.json"
    data = json.loads(coco.read_text())
    data["images"][0]["file_name"] = "../../etc/passwd"
    coco.write_text(json.dumps(data))
    (root / "empty").mkdir()
    sets["empty"] = root / "empty"
    return sets


def test_train_detector_bad_datasets(broken_detection_sets, store, tmp_path, monkeypatch):
    """Each fails while the data is read (before any training), one line, exit 2."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    sets = broken_detection_sets
    cases = [
        ("unknown", "voc", [str(sets["unknown"] / "Annotations" / "train_000000.xml"),
                            "unknown class 'dog'", "--unknown-class skip"]),
        ("xml", "voc", ["train_000001.xml", "malformed XML at line 1", "kcv data check"]),
        ("json", "coco", ["instances_train.json", "malformed JSON", "kcv data check"]),
        ("escape", "coco", ["instances_train.json (entry image", "'../../etc/passwd'",
                            "escapes the dataset root"]),
        ("empty", "voc", [str(sets["empty"]), "kcv data make shapes"]),
    ]
    for name, fmt, parts in cases:
        result = kcv("train-detector", "--data", sets[name], "--format", fmt, "--epochs", "1",
                     "--workers", "0")
        assert_one_line(result, 2, *parts)
        assert "Segmentation" not in result.output  # the detector reads ImageSets/Main
