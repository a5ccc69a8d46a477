"""The model's metadata inside an export, so a consumer needs nothing but the file.

Stored as one JSON document (`describe(model)`'s fields plus `export`: the graph's kind,
input and output names, the post-processing baked in):

* ONNX: `metadata_props`, one entry per field, the value as JSON;
* SavedModel: `assets/kcv_metadata.json`;
* TFLite: an associated file `kcv_metadata.json` in a zip appended to the flatbuffer, the
  layout TFLite Support's metadata writer uses for associated files: interpreters ignore the
  trailing bytes and `zipfile` reads them.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

from kerascv_suite.export.formats import check_format

SAVED_MODEL_METADATA = "assets/kcv_metadata.json"
TFLITE_METADATA = "kcv_metadata.json"
METADATA_FORMATS = ("onnx", "saved_model", "tflite")


def export_fields(model, export=None):
    """`describe(model)` as JSON, plus `export` (the graph description) when given."""
    from kerascv_suite.models.metadata import describe, to_json

    fields = to_json(describe(model))
    if export is not None:
        fields["export"] = to_json(export)
    return fields


def write_metadata(path, format, model, export=None):
    """Stores `export_fields(model, export)` in the export at `path`. Returns True."""
    check_format(format)
    fields = export_fields(model, export)
    if format == "onnx":
        import onnx

        proto = onnx.load(os.fspath(path))
        kept = [p for p in proto.metadata_props if p.key not in fields]
        del proto.metadata_props[:]
        proto.metadata_props.extend(kept)
        for key, value in fields.items():
            proto.metadata_props.add(key=key, value=json.dumps(value))
        onnx.save(proto, os.fspath(path))
    elif format == "saved_model":
        target = Path(path) / SAVED_MODEL_METADATA
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(fields, indent=1), encoding="utf-8")
    else:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(TFLITE_METADATA, json.dumps(fields, indent=1))
        with open(path, "ab") as f:
            f.write(buffer.getvalue())
    return True


def exported_metadata(path, format=None):
    """The metadata `export_model` stored (the keys of `models.describe`, JSON values: lists
    for tuples, plus `export` for detector / segmenter graphs), or None where the export
    has none (`format`: None guesses it from `path`)."""
    from kerascv_suite.export.formats import format_of
    from kerascv_suite.models.metadata import FIELDS

    format = format or format_of(path)
    check_format(format)
    if format == "onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(os.fspath(path)).metadata_props}
        if not set(FIELDS) <= set(props):
            return None
        return {key: json.loads(value) for key, value in props.items()
                if key in FIELDS or key == "export"}
    if format == "saved_model":
        target = Path(path) / SAVED_MODEL_METADATA
        return json.loads(target.read_text(encoding="utf-8")) if target.is_file() else None
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(TFLITE_METADATA).decode("utf-8"))
    except (zipfile.BadZipFile, KeyError):
        return None
