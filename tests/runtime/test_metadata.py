"""A third-party model's own metadata (edgekit.runtime.metadata): Ultralytics' appended dict,
read as data and never evaluated, and TFLite Support metadata with its label files. Whatever
is malformed becomes a warning, never an exception."""

from __future__ import annotations

import io
import zipfile

import pytest

from edgekit.core.artifact import flatbuffer_end
from edgekit.runtime.metadata import (
    MAX_MEMBER_BYTES,
    MAX_MEMBERS,
    parse_support_metadata,
    parse_ultralytics,
    read_metadata,
)

BODY = b"\x1c\x00\x00\x00TFL3" + b"\x00" * 56  # stands for a flatbuffer (never parsed here)

ULTRALYTICS = {
    "description": "Ultralytics YOLOv8n model trained on coco.yaml",
    "author": "Ultralytics",
    "date": "2024-01-01T00:00:00",
    "version": "8.1.0",
    "license": "AGPL-3.0 License (https://ultralytics.com/license)",
    "stride": 32,
    "task": "detect",
    "batch": 1,
    "imgsz": [640, 480],
    "names": {0: "person", 1: "bicycle", 2: "car"},
}


def appended(files: dict[str, str | bytes], body: bytes = BODY) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return body + buf.getvalue()


def check_ultralytics(meta, member):
    assert meta.source == "ultralytics"
    assert meta.labels == ("person", "bicycle", "car")
    assert meta.labels_source == f"Ultralytics metadata ({member})"
    assert (meta.input_size, meta.stride, meta.task) == ((640, 480), 32, "detect")
    assert meta.license.startswith("AGPL-3.0") and meta.description.startswith("Ultralytics")
    assert (meta.author, meta.version) == ("Ultralytics", "8.1.0")
    assert meta.normalization == (0.0, 255.0)  # Ultralytics models take pixels / 255
    assert meta.warnings == ()


def test_ultralytics_json_metadata():
    import json

    meta = read_metadata(appended({"metadata.json": json.dumps(ULTRALYTICS, indent=2)}))
    check_ultralytics(meta, "metadata.json")


def test_ultralytics_python_literal_metadata():
    # older exports: str(dict) in temp_meta.txt, int keys, single quotes, True/False
    text = str({**ULTRALYTICS, "args": {"int8": True, "half": False}})
    check_ultralytics(read_metadata(appended({"temp_meta.txt": text})), "temp_meta.txt")


def test_names_as_a_list_or_with_gaps():
    assert read_metadata(appended({"m.txt": str({**ULTRALYTICS, "names": ["a", "b"]})})).labels == (
        "a",
        "b",
    )
    gaps = {**ULTRALYTICS, "names": {"0": "a", "2": "c"}}
    assert read_metadata(appended({"m.json": str(gaps)})).labels == ("a", "", "c")


def test_the_text_is_never_evaluated(tmp_path):
    marker = tmp_path / "pwned"
    hostile = "{'names': __import__('os').system('touch " + str(marker) + "'), 'task': 'detect'}"
    meta = read_metadata(appended({"metadata.json": hostile}))
    assert not marker.exists()
    assert meta.source == "" and meta.labels == ()
    (warning,) = meta.warnings
    assert "metadata.json" in warning and "not a JSON or Python literal" in warning


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{names: garbage", "not a JSON or Python literal"),
        ("{1, 2, 3}", "a set, not a dict"),
        ("{'a': " + "[" * 5000 + "]" * 5000 + "}", "not a JSON or Python literal"),
        ("{" + "'x': 1, " * 10 + "'names': lambda: 0}", "not a JSON or Python literal"),
    ],
)
def test_garbage_is_a_warning(text, reason):
    meta = read_metadata(appended({"metadata.json": text}))
    assert meta.labels == () and meta.source == ""
    (warning,) = meta.warnings
    assert reason in warning


def test_malformed_fields_are_dropped_one_by_one():
    bad = {**ULTRALYTICS, "names": {"x": "a"}, "imgsz": "big", "stride": "s", "task": "dance"}
    meta = read_metadata(appended({"metadata.json": str(bad)}))
    assert meta.source == "ultralytics" and meta.license.startswith("AGPL")
    assert meta.labels == () and meta.input_size is None and meta.stride is None
    assert meta.task == ""
    assert len(meta.warnings) == 4
    assert any("names ignored" in w for w in meta.warnings)


def test_size_limits():
    huge = "{'names': {0: 'a'}, 'task': 'detect', 'pad': '" + "x" * MAX_MEMBER_BYTES + "'}"
    meta = read_metadata(appended({"metadata.json": huge}))
    assert meta.labels == ()
    assert any("ignored" in w and "limit" in w for w in meta.warnings)
    with pytest.raises(ValueError, match="limit"):
        parse_ultralytics(huge)
    many = appended({f"f{i}.txt": "x" for i in range(MAX_MEMBERS + 5)})
    assert any("only the first" in w for w in read_metadata(many).warnings)


def test_damaged_zip_member_is_a_warning():
    data = bytearray(appended({"metadata.json": str(ULTRALYTICS) * 20}))
    start = flatbuffer_end(bytes(data))
    data[start + 60 : start + 80] = b"\xff" * 20  # inside the compressed member
    meta = read_metadata(bytes(data))
    assert meta.labels == ()
    assert any("metadata.json" in w for w in meta.warnings)


def test_other_appended_files_are_not_metadata():
    meta = read_metadata(appended({"notes.json": '{"foo": 1}', "readme.txt": "hello"}))
    assert meta.source == "" and meta.warnings == ()
    assert read_metadata(BODY).source == ""  # nothing appended


# --- TFLite Support metadata ----------------------------------------------------------------


def test_ssd_label_map_and_model_card(shared):
    data = shared("models", "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite").read_bytes()
    meta = read_metadata(data)
    assert meta.source == "tflite-support"
    assert (meta.name, meta.author, meta.version) == ("Coco SSD MobileNetV1", "TensorFlow", "v1")
    assert meta.license.startswith("Apache License")
    assert meta.labels[:2] == ("person", "bicycle") and len(meta.labels) == 90
    assert meta.labels_source == "labelmap.txt (TFLite metadata)"
    assert meta.normalization == (127.5, 127.5)


def test_classifier_label_file_is_found_by_its_metadata_name(shared):
    data = shared("models", "mobilenet_v2_1.0_224_quant.tflite").read_bytes()
    meta = read_metadata(data)
    assert len(meta.labels) == 1001 and meta.labels[0] == "background"
    assert meta.labels_source == "imagenet_labels.txt (TFLite metadata)"
    stripped = read_metadata(data[: flatbuffer_end(data)])  # label file named but missing
    assert stripped.labels == ()
    assert stripped.warnings == (
        "TFLite metadata names label file 'imagenet_labels.txt', not in the model",
    )


def test_malformed_support_metadata():
    with pytest.raises(ValueError, match="M001"):
        parse_support_metadata(b"not metadata at all")
    with pytest.raises(ValueError, match="malformed"):
        parse_support_metadata(b"\xff\xff\x00\x00M001" + b"\x00" * 8)
