"""The format table and the validation of converted artifacts (TF-free: real and packed models)."""

from __future__ import annotations

import pytest

from edgekit.core.flatbuffer import read_tflite, read_tflite_file
from edgekit.errors import ExportError, UsageError
from edgekit.export.formats import FORMATS, get_format, unquantized_ops, validate


def test_one_row_per_format():
    assert list(FORMATS) == ["float32", "float16", "dynamic", "int8", "edgetpu"]
    assert len({f.suffix for f in FORMATS.values()}) == len(FORMATS)
    assert {n for n, f in FORMATS.items() if f.needs_calibration} == {"int8", "edgetpu"}
    assert {n for n, f in FORMATS.items() if f.quantized} == {"int8", "edgetpu"}
    assert FORMATS["edgetpu"].compile_edgetpu and not FORMATS["int8"].compile_edgetpu
    assert FORMATS["float16"].weights == "float16" and FORMATS["dynamic"].weights == "int8"
    with pytest.raises(UsageError, match="choose one of"):
        get_format("int4")


@pytest.mark.shared
def test_reference_int8_models_validate(shared):
    for name in (
        "mobilenet_v2_1.0_224_quant.tflite",
        "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite",
    ):
        graph = read_tflite_file(shared("models", name))
        assert unquantized_ops(graph) == []
        validate(graph, get_format("int8"), io_dtype="uint8")
        with pytest.raises(ExportError, match="uint8 input, expected int8"):
            validate(graph, get_format("int8"), io_dtype="int8")
        with pytest.raises(ExportError, match="unexpectedly holds quantized"):
            validate(graph, get_format("float32"), io_dtype="uint8")


def _packed(custom_code=None, dtype=0):
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    flatbuffers = pytest.importorskip("flatbuffers")
    oc = schema.OperatorCodeT()
    if custom_code:
        oc.builtinCode = oc.deprecatedBuiltinCode = 32
        oc.customCode = custom_code
    else:
        oc.builtinCode = oc.deprecatedBuiltinCode = 3  # CONV_2D
    tensors = []
    for i, shape in enumerate(([1, 8, 8, 3], [4, 3, 3, 3], [1, 8, 8, 4])):
        t = schema.TensorT()
        t.shape, t.type, t.buffer, t.name = shape, dtype, 1 if i == 1 else 0, f"t{i}".encode()
        tensors.append(t)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    sg = schema.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs, sg.operators = tensors, [0], [2], [op]
    buffers = [schema.BufferT(), schema.BufferT()]
    buffers[1].data = [0] * (4 * 27 * 4)
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [oc], [sg], buffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return read_tflite(bytes(builder.Output()))


def test_float_model_fails_int8_validation_naming_the_op():
    graph = _packed()
    validate(graph, get_format("float32"), io_dtype="float32")
    with pytest.raises(ExportError, match="float32 input, expected uint8"):
        validate(graph, get_format("int8"))
    with pytest.raises(
        ExportError, match=r"not fully quantized: 1 op\(s\) on float, first #0 CONV_2D"
    ):
        validate(graph, get_format("int8"), io_dtype="float32")


def test_flex_ops_are_rejected():
    with pytest.raises(ExportError, match="Flex"):
        validate(
            _packed(custom_code=b"FlexMatrixDeterminant"), get_format("float32"), io_dtype="float32"
        )
