"""A TFLite / ONNX conversion that would need more memory than the machine has is refused
before it starts, with one line naming the model, the estimate and saved_model (YOLO v1 at
448 px, 272 M parameters, was killed by the OOM killer at 22.4 GB on this 24 GiB machine)."""

import re

import keras
import pytest
from click.testing import CliRunner


def test_estimate_against_the_available_memory():
    from kerascv_suite.export.formats import CONVERSION_BYTES, check_conversion_memory

    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(1000)], name="dense")
    weights = 4 * model.count_params()  # 44,000 bytes
    fixed, factor = CONVERSION_BYTES["graph"]
    check_conversion_memory(model, ["saved_model"], graph=True, available=1)  # no conversion
    check_conversion_memory(model, ["tflite"], graph=True, available=fixed + factor * weights)
    with pytest.raises(ValueError, match=r"'dense' \(0 MB of float32 weights\) to onnx needs"):
        check_conversion_memory(model, ["onnx"], graph=True,
                                available=fixed + factor * weights - 1)
    model_fixed, model_factor = CONVERSION_BYTES["model"]
    check_conversion_memory(model, ["tflite"], available=model_fixed + model_factor * weights)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="detector graphs export on the tensorflow backend")
def test_kcv_export_refuses_in_one_line_and_writes_nothing(tmp_path, monkeypatch):
    from kerascv_suite.apps.cli import main
    from kerascv_suite.export import formats

    monkeypatch.setattr(formats, "available_memory", lambda: 3e9)
    out = tmp_path / "yolo.tflite"
    result = CliRunner().invoke(main, ["export", "--model", "yolo_v1", "--format", "tflite",
                                       "--out", str(out)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert re.match(r"Error: Converting 'yolo_v1\w*' \(1087 MB of float32 weights\) to tflite "
                    r"needs about 32 GB of memory and this machine has 3.0 GB available; "
                    r"export it as saved_model", lines[0]), lines[0]
    assert not out.exists()
