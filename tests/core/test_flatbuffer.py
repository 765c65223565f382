"""The pure-Python .tflite reader: enum tables, real models, hand-packed models, garbage."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.core.artifact import embed
from edgekit.core.flatbuffer import (
    BUILTIN_OPERATORS,
    TENSOR_TYPES,
    builtin_name,
    read_tflite,
    read_tflite_file,
)
from edgekit.core.types import ModelSpec

schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
flatbuffers = pytest.importorskip("flatbuffers")


def test_builtin_operator_table_matches_schema():
    generated = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    for code, name in enumerate(BUILTIN_OPERATORS):
        assert generated[code] == name, code
    assert builtin_name(10_000) == "BUILTIN_10000"


def test_tensor_type_table_matches_schema():
    generated = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    assert len(TENSOR_TYPES) == len(generated)
    for code, name in enumerate(TENSOR_TYPES):
        assert generated[code].lower() == name, code


def _packed_model() -> bytes:
    """A small model packed with the generated object API (no TensorFlow)."""
    s = schema
    codes = []
    for builtin, deprecated, custom in (
        (3, 3, None),
        (150, 127, None),
        (32, 32, b"edgetpu-custom-op"),
    ):
        oc = s.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.customCode, oc.version = (
            builtin,
            deprecated,
            custom,
            1,
        )
        codes.append(oc)
    tensors = []
    for i, (shape, ttype) in enumerate((([1, 8, 8, 3], 9), ([4, 3, 3, 3], 9), ([1, 4, 4, 4], 3))):
        t = s.TensorT()
        t.shape, t.type, t.buffer, t.name = shape, ttype, i + 1, f"t{i}".encode()
        q = s.QuantizationParametersT()
        q.scale, q.zeroPoint = [0.5 + i], [i - 1]
        t.quantization = q
        tensors.append(t)
    conv = s.OperatorT()
    conv.opcodeIndex, conv.inputs, conv.outputs = 0, [0, 1, -1], [2]
    conv.builtinOptionsType = s.BuiltinOptions.Conv2DOptions
    opts = s.Conv2DOptionsT()
    opts.strideW, opts.strideH, opts.padding, opts.fusedActivationFunction = 2, 2, 1, 3
    conv.builtinOptions = opts
    gelu = s.OperatorT()
    gelu.opcodeIndex, gelu.inputs, gelu.outputs = 1, [2], [2]
    sg = s.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs, sg.operators, sg.name = (
        tensors,
        [0],
        [2],
        [conv, gelu],
        b"main",
    )
    buffers = [s.BufferT() for _ in range(4)]
    buffers[2].data = list(range(108))
    md = s.MetadataT()
    md.name, md.buffer = b"min_runtime_version", 3
    model = s.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, codes, [sg], buffers
    model.metadata, model.description = [md], b"packed"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_reads_packed_model_fields():
    g = read_tflite(_packed_model())
    assert g.version == 3 and g.description == "packed"
    assert [c.name for c in g.operator_codes] == ["CONV_2D", "GELU", "edgetpu-custom-op"]
    assert g.contains_edgetpu_ops and not g.contains_flex_ops
    assert g.metadata_names == ("min_runtime_version",)
    assert g.buffer_sizes == (0, 0, 108, 0)
    main = g.main
    assert main.name == "main" and main.inputs == (0,) and main.outputs == (2,)
    t0, _t1, t2 = main.tensors
    assert (t0.name, t0.shape, t0.dtype) == ("t0", (1, 8, 8, 3), "int8")
    assert (
        t2.dtype == "uint8"
        and t2.quantization.scale == (2.5,)
        and t2.quantization.zero_point == (1,)
    )
    assert t0.is_quantized
    conv, gelu = main.operators
    assert conv.op == "CONV_2D" and conv.inputs == (0, 1, -1) and conv.outputs == (2,)
    assert conv.options == {
        "padding": "VALID",
        "stride_w": 2,
        "stride_h": 2,
        "fused_activation": "RELU6",
        "dilation_w": 1,
        "dilation_h": 1,
    }
    assert gelu.op == "GELU" and gelu.options == {}
    assert g.op_histogram() == {"CONV_2D": 1, "GELU": 1}


def test_reads_model_with_appended_zip():
    data = _packed_model()
    spec = ModelSpec(task="classify", decoder="classify", input_size=(8, 8))
    g = read_tflite(embed(data, spec, ("a", "b")))
    assert g == read_tflite(data)


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"\x00" * 7,
        b"\x10\x00\x00\x00ABCD" + b"\x00" * 32,
        b"\xff\xff\xff\x7fTFL3" + b"\x00" * 8,
    ],
)
def test_rejects_garbage(bad):
    with pytest.raises(ValueError):
        read_tflite(bad)


def _must_parse_or_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        read_tflite(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_random_bytes_never_crash(data):
    _must_parse_or_value_error(data)
    _must_parse_or_value_error(data[:4] + b"TFL3" + data[8:])


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.data())
def test_truncated_or_corrupted_models_never_crash(cut, draw):
    data = _packed_model()
    _must_parse_or_value_error(data[: cut % len(data)])
    mutated = bytearray(data)
    rng = random.Random(draw.draw(st.integers(0, 2**32 - 1)))
    for _ in range(rng.randint(1, 8)):
        mutated[rng.randrange(len(mutated))] = rng.randrange(256)
    _must_parse_or_value_error(bytes(mutated))


@pytest.mark.shared
@pytest.mark.parametrize(
    "name",
    [
        "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite",
        "mobilenet_v2_1.0_224_quant.tflite",
        "movenet_single_pose_lightning_ptq.tflite",
        "posenet_mobilenet_v1_075_481_641_quant.tflite",
    ],
)
def test_matches_interpreter_on_real_models(shared, name):
    interpreter_mod = pytest.importorskip("ai_edge_litert.interpreter")
    path = shared("models", name)
    g = read_tflite_file(path)
    it = interpreter_mod.Interpreter(model_path=str(path))
    it.allocate_tensors()
    ops = [op for op in it._get_ops_details() if op["op_name"] != "DELEGATE"]  # XNNPACK nodes
    assert [op["op_name"] for op in ops] == [op.op for op in g.main.operators]
    for op, ref in zip(g.main.operators, ops, strict=True):
        assert list(op.inputs) == list(ref["inputs"]) and list(op.outputs) == list(ref["outputs"])
    for ref in it.get_input_details() + it.get_output_details():
        t = g.main.tensors[ref["index"]]
        assert t.name == ref["name"]
        if t.shape:  # TFLite_Detection_PostProcess outputs have their shape set at run time
            assert list(t.shape) == list(ref["shape"])
        assert t.dtype == ref["dtype"].__name__
        scale, zp = ref["quantization"]
        if t.quantization:
            assert t.quantization.scale[0] == pytest.approx(scale)
            assert t.quantization.zero_point[0] == zp
    if "ssd" in name:
        assert g.op_histogram()["TFLite_Detection_PostProcess"] == 1
        assert g.main.operators[-1].op == "TFLite_Detection_PostProcess"


@pytest.mark.shared
def test_edgetpu_compiled_model_detected(shared):
    g = read_tflite_file(shared("models", "movenet_single_pose_lightning_ptq_edgetpu.tflite"))
    assert g.contains_edgetpu_ops
    assert not read_tflite_file(
        shared("models", "movenet_single_pose_lightning_ptq.tflite")
    ).contains_edgetpu_ops


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match=r"bad\.tflite"):
        read_tflite_file(bad)
