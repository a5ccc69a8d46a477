"""Under jax and torch, `kcv export` to a format the backend cannot write is one line naming
the backend and what to use instead (KERAS_BACKEND=tensorflow), not a traceback."""

import pytest
from click.testing import CliRunner


@pytest.mark.backend
def test_formats_the_backend_cannot_write_give_one_line(tmp_path, backend):
    from kerascv_suite.apps.cli import main
    from kerascv_suite.export import BACKEND_FORMATS

    cases = [(["--model", "lenet5"], f, "lenet5") for f in ("saved_model", "onnx", "tflite")
             if f not in BACKEND_FORMATS[backend]]
    if backend != "tensorflow":  # detector graphs are traced with tf.function
        cases.append((["--model", "yolo_v1_tiny", "--input-shape", "64,64,3"],
                      "saved_model", "yolo"))
    if not cases:
        pytest.skip("the tensorflow backend writes every format (tests/export, tests/apps)")
    for options, export_format, name in cases:
        out = tmp_path / f"{name}_{export_format}"
        result = CliRunner().invoke(main, ["export", *options, "--format", export_format,
                                           "--out", str(out)])
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1, result.output
        assert lines[0].startswith(f"Error: The {backend} backend cannot export")
        assert "KERAS_BACKEND=tensorflow" in lines[0] and f"backend={backend!r}" in lines[0]
        assert not out.exists()
