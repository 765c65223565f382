"""Property tests: malformed input to the JSONL writer and the metadata parsers gives a
ValueError (or a valid result), never another exception type."""

from __future__ import annotations

import io
import json
import math
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.core.artifact import LABELS_NAME, SPEC_NAME, parse_labels, read_embedded
from edgekit.core.types import (
    Classification,
    Detection,
    Frame,
    FrameResult,
    Keypoint,
    ModelSpec,
    Pose,
)
from edgekit.io.sinks import result_to_json

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

anything_float = st.floats(allow_nan=True, allow_infinity=True)
unit = st.floats(0.0, 1.0)
json_scalars = st.none() | st.booleans() | st.integers() | anything_float | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _result(dets, poses, classes, h=6, w=9) -> FrameResult:
    frame = Frame(np.zeros((h, w, 3), np.uint8), 7, 0, "prop")
    return FrameResult(frame, detections=tuple(dets), poses=tuple(poses), classes=tuple(classes))


detections = st.builds(
    Detection,
    st.tuples(anything_float, anything_float, anything_float, anything_float),
    st.integers(-(2**40), 2**40),
    anything_float,
    st.text(max_size=10),
    st.none() | st.integers(0, 2**31),
)
keypoints = st.builds(Keypoint, anything_float, anything_float, anything_float)
poses = st.builds(Pose, st.lists(keypoints, max_size=17).map(tuple), anything_float)
classes = st.builds(Classification, st.integers(0, 1000), anything_float, st.text(max_size=10))


@SETTINGS
@given(st.lists(detections, max_size=4), st.lists(poses, max_size=2), st.lists(classes, max_size=3))
def test_result_to_json_always_gives_strict_json(dets, ps, cs):
    out = result_to_json(_result(dets, ps, cs))
    text = json.dumps(out, allow_nan=False)  # NaN / inf become null, so this never fails
    back = json.loads(text)
    assert back["frame"] == 7 and back["width"] == 9 and back["height"] == 6
    assert len(back.get("detections", [])) == len(dets)


@SETTINGS
@given(
    st.lists(
        st.builds(
            Detection,
            st.tuples(unit, unit, unit, unit),
            st.integers(0, 90),
            unit,
            st.text(max_size=10),
        ),
        max_size=5,
    )
)
def test_result_to_json_finite_boxes_are_frame_pixels(dets):
    out = result_to_json(_result(dets, [], []))
    for det, item in zip(dets, out.get("detections", []), strict=True):
        x0, y0, x1, y1 = item["box"]
        assert math.isclose(x0, round(det.box[0] * 9, 1), abs_tol=0.11)
        assert 0.0 <= x0 <= 9.0 and 0.0 <= x1 <= 9.0 and 0.0 <= y0 <= 6.0 and 0.0 <= y1 <= 6.0
        assert item["score"] == round(det.score, 4)


def _value_error_or_ok(fn, *args):
    try:
        return fn(*args)
    except ValueError:
        return None


@SETTINGS
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=8) | json_values)
def test_model_spec_from_dict_raises_only_value_error(data):
    spec = _value_error_or_ok(ModelSpec.from_dict, data)
    if spec is not None:
        assert ModelSpec.from_json(spec.to_json()) == spec


@SETTINGS
@given(
    st.fixed_dictionaries(
        {"task": st.sampled_from(["detect", "pose", "classify"]), "decoder": st.text(max_size=8)},
        optional={
            "input_size": json_values | st.lists(st.integers(-3, 3000), max_size=3),
            "normalization": json_values | st.lists(anything_float, max_size=3),
            "labels": json_values | st.lists(st.text(max_size=5), max_size=3),
            "keypoint_names": json_values,
            "decoder_params": json_values,
            "resize_mode": json_values | st.sampled_from(["resize", "letterbox"]),
        },
    )
)
def test_model_spec_near_valid_dicts_raise_only_value_error(data):
    spec = _value_error_or_ok(ModelSpec.from_dict, data)
    if spec is not None:
        assert ModelSpec.from_json(spec.to_json()) == spec


@SETTINGS
@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_model_spec_from_json_raises_only_value_error(text):
    _value_error_or_ok(ModelSpec.from_json, text)


@SETTINGS
@given(st.text(max_size=300))
def test_parse_labels_gives_strings_or_value_error(text):
    labels = _value_error_or_ok(parse_labels, text)
    if labels is not None:
        assert all(isinstance(label, str) for label in labels)


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.integers(0, 10**12) | st.text("0123456789²٣", max_size=4), st.text(max_size=6)
        ),
        max_size=6,
    )
)
def test_parse_labels_id_lines_never_crash(pairs):
    text = "\n".join(f"{i} {name}" for i, name in pairs)
    _value_error_or_ok(parse_labels, text)


def _zip(files: dict[str, bytes], prefix: bytes = b"TFL3model") -> bytes:
    buf = io.BytesIO()
    buf.write(prefix)
    with zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


VALID_SPEC = ModelSpec(task="detect", decoder="ssd_postprocess", input_size=(32, 32)).to_json()


@SETTINGS
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_read_embedded_member_garbage_raises_only_value_error(spec_bytes, label_bytes):
    _value_error_or_ok(read_embedded, _zip({SPEC_NAME: spec_bytes, LABELS_NAME: label_bytes}))


def test_read_embedded_encrypted_flag_bit_is_a_value_error():
    # A flipped "encrypted" bit makes zipfile raise RuntimeError (found by the test below).
    data = bytearray(_zip({SPEC_NAME: VALID_SPEC.encode(), LABELS_NAME: b"person\n"}))
    at = data.index(b"PK\x01\x02")  # first central-directory entry; flags at +8
    data[at + 8] |= 0x01
    with pytest.raises(ValueError, match="damaged"):
        read_embedded(bytes(data))


@SETTINGS
@given(st.integers(0, 10_000), st.binary(min_size=1, max_size=8), st.booleans())
def test_read_embedded_corrupted_or_truncated_zip_raises_only_value_error(at, junk, truncate):
    data = bytearray(_zip({SPEC_NAME: VALID_SPEC.encode(), LABELS_NAME: b"person\ncar\n"}))
    at %= len(data)
    if truncate:
        data = data[:at]
    else:
        data[at : at + len(junk)] = junk
    _value_error_or_ok(read_embedded, bytes(data))
