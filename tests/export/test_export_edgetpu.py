"""Edge TPU op report (TF-free, real models) and the compiler wrapper (a fake edgetpu_compiler)."""

from __future__ import annotations

import os
import stat
import sys
import textwrap
from collections import Counter

import pytest

from edgekit.core.flatbuffer import read_tflite, read_tflite_file
from edgekit.errors import DependencyMissing, ExportError
from edgekit.export.edgetpu import (
    check_edgetpu,
    compile_edgetpu,
    parse_compiler_log,
    summarize,
)

# A real log (compiler 16, as printed for a partly-mapped model; google-coral/edgetpu#427 format).
REAL_LOG = """\
Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 1379 ms.

Input model: {src}
Input size: 4.41MiB
Output model: {out}
Output size: 5.49MiB
On-chip memory used for caching model parameters: 3.42MiB
On-chip memory remaining for caching model parameters: 1.75KiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 66
Operation log: {log}

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 64
Number of operations that will run on CPU: 2

Operator                       Count      Status

CONV_2D                        36         Mapped to Edge TPU
DEPTHWISE_CONV_2D              17         Mapped to Edge TPU
ADD                            10         Mapped to Edge TPU
AVERAGE_POOL_2D                1          Mapped to Edge TPU
DEQUANTIZE                     1          Operation is working on an unsupported data type
CUSTOM                         1          Operation is working on an unsupported data type
Compilation child process completed within timeout period.
Compilation succeeded!
"""


# --------------------------------------------------------------------------- op report


@pytest.mark.shared
def test_report_predicts_the_real_compilers_partition_of_movenet(shared):
    """Coral compiled MoveNet: our report's CPU ops are exactly the ops left outside the
    edgetpu-custom-op in their compiled file (same histogram)."""
    report = check_edgetpu(shared("models", "movenet_single_pose_lightning_ptq.tflite"))
    compiled = read_tflite_file(
        shared("models", "movenet_single_pose_lightning_ptq_edgetpu.tflite")
    )
    ours_cpu = Counter(op["op"] for op in report["ops"] if op["status"] != "mappable")
    theirs_cpu = Counter(op.op for op in compiled.main.operators if op.op != "edgetpu-custom-op")
    assert ours_cpu == theirs_cpu
    assert report["edgetpu_ready"] and report["first_unmappable"] is None
    statuses = Counter(op["status"] for op in report["ops"])
    assert statuses == {
        "mappable": 98,
        "cpu_tail": 57,
        "cpu_head": 2,
    }  # CAST+QUANTIZE of the uint8 input


@pytest.mark.shared
@pytest.mark.parametrize(
    ("name", "tpu_ops"),
    [
        ("mobilenet_v1_0.25_128_quant_edgetpu.tflite", 1),
        ("movenet_single_pose_lightning_ptq_edgetpu.tflite", 1),
    ],
)
def test_already_compiled_models_say_so(shared, name, tpu_ops):
    report = check_edgetpu(shared("models", name))
    assert report["compiled"] is True
    assert report["mappable_ops"] == tpu_ops
    assert "already compiled" in summarize(report)


@pytest.mark.shared
def test_fully_mapped_reference_models(shared):
    for name, total in (
        ("mobilenet_v2_1.0_224_quant.tflite", 66),
        ("mobilenet_v1_0.25_128_quant.tflite", 31),
    ):
        report = check_edgetpu(shared("models", name))
        assert (report["mappable_ops"], report["total_ops"]) == (total, total), name
    # The SSD's TFLite_Detection_PostProcess is the CPU tail, everything before it maps.
    ssd = check_edgetpu(shared("models", "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"))
    assert ssd["edgetpu_ready"]
    assert [op["op"] for op in ssd["ops"] if op["status"] == "cpu_tail"] == [
        "TFLite_Detection_PostProcess"
    ]


def _tiny_keras(tf, keras, extra=None):
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    if extra is not None:
        x = extra(x)
    x = keras.layers.Conv2D(4, 1)(x)
    return keras.Model(inp, x)


@pytest.mark.tf
def test_float_model_is_cut_at_its_first_op():
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    flat = tf.lite.TFLiteConverter.from_keras_model(_tiny_keras(tf, keras)).convert()
    report = check_edgetpu(flat)
    first = report["first_unmappable"]
    assert first is not None and first["index"] == 0 and first["op"] == "CONV_2D"
    assert "not quantized" in first["reason"] and "float32" in first["reason"]
    assert report["mappable_ops"] == 0 and not report["edgetpu_ready"]


@pytest.mark.tf
def test_flex_op_is_named_with_its_reason():
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    det = keras.layers.Lambda(
        lambda t: tf.reshape(tf.linalg.det(tf.reshape(t, [-1, 16, 16])), [-1, 1, 4, 4])
    )
    converter = tf.lite.TFLiteConverter.from_keras_model(_tiny_keras(tf, keras, det))
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS,
        tf.lite.OpsSet.SELECT_TF_OPS,
    ]
    graph = read_tflite(converter.convert())
    assert graph.contains_flex_ops
    report = check_edgetpu(graph)
    flex = [op for op in report["ops"] if op["op"].startswith("Flex")]
    assert len(flex) == 1
    assert "custom op 'FlexMatrixDeterminant' is not supported" in flex[0]["reason"]
    # the conv after it depends on it: it cannot be mapped either
    assert report["ops"][-1]["status"] in ("cpu", "unmappable")
    assert not report["edgetpu_ready"]


# --------------------------------------------------------------------------- compiler wrapper


def _compiled_template(tmp_path, size=8):
    """A small valid flatbuffer whose only op is edgetpu-custom-op (packed with the schema API)."""
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    flatbuffers = pytest.importorskip("flatbuffers")
    oc = schema.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = 32
    oc.customCode, oc.version = b"edgetpu-custom-op", 1
    tensors = []
    for i in range(2):
        t = schema.TensorT()
        t.shape, t.type, t.buffer, t.name = [1, size, size, 3], 3, 0, f"t{i}".encode()
        tensors.append(t)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    sg = schema.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs, sg.operators = tensors, [0], [1], [op]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = (
        3,
        [oc],
        [sg],
        [schema.BufferT()],
    )
    builder = flatbuffers.Builder(256)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path = tmp_path / "template_edgetpu.tflite"
    path.write_bytes(bytes(builder.Output()))
    return path


def _fake_compiler(tmp_path, monkeypatch, *, exit_code=0, write=True, log=REAL_LOG, size=8):
    """An executable `edgetpu_compiler` first on PATH that mimics the real one's CLI."""
    template = _compiled_template(tmp_path, size)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "edgetpu_compiler"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import shutil, sys
            from pathlib import Path
            args = sys.argv[1:]
            out = Path(args[args.index("-o") + 1])
            src = Path(args[-1])
            dst = out / (src.stem + "_edgetpu.tflite")
            print({log!r}.format(src=src, out=dst, log=out / (src.stem + "_edgetpu.log")))
            if {write!r}:
                shutil.copyfile({str(template)!r}, dst)
            if {exit_code}:
                print("Internal compiler error. Aborting!", file=sys.stderr)
            sys.exit({exit_code})
            """
        )
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    src = tmp_path / "model.tflite"
    src.write_bytes(template.read_bytes())
    return src


def test_compile_parses_the_log(tmp_path, monkeypatch):
    src = _fake_compiler(tmp_path, monkeypatch)
    result = compile_edgetpu(src, tmp_path / "out")
    assert result.path == tmp_path / "out" / "model_edgetpu.tflite" and result.path.is_file()
    assert result.version == "16.0.384591198"
    assert (result.ops_on_edgetpu, result.ops_on_cpu, result.total_ops) == (64, 2, 66)
    assert result.on_chip_memory == "3.42MiB" and result.off_chip_memory == "0.00B"
    assert result.subgraphs == 1
    assert result.op_table[0] == ("CONV_2D", 36, "Mapped to Edge TPU")
    assert ("DEQUANTIZE", 1, "Operation is working on an unsupported data type") in result.op_table
    assert len(result.op_table) == 6


def test_compiler_failure_raises_with_log_tail(tmp_path, monkeypatch):
    src = _fake_compiler(tmp_path, monkeypatch, exit_code=1, write=False)
    with pytest.raises(ExportError, match="exit code 1") as info:
        compile_edgetpu(src, tmp_path / "out")
    assert "Internal compiler error" in str(info.value)


def test_compiler_success_without_output_is_an_error(tmp_path, monkeypatch):
    src = _fake_compiler(tmp_path, monkeypatch, write=False)
    with pytest.raises(ExportError, match="wrote no"):
        compile_edgetpu(src, tmp_path / "out")


def test_missing_compiler_says_how_to_install(tmp_path, monkeypatch):
    src = _compiled_template(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(DependencyMissing) as info:
        compile_edgetpu(src, tmp_path / "out")
    text = str(info.value)
    assert "edgetpu_compiler not found" in text and "apt" in text and "x86-64" in text


def test_parse_log_when_everything_maps():
    log = REAL_LOG.split("Model successfully compiled but")[0] + (
        "\nOperator                       Count      Status\n\n"
        "CONV_2D                        2          Mapped to Edge TPU\n"
        "SOFTMAX                        1          Mapped to Edge TPU\n"
    )
    fields = parse_compiler_log(log)
    assert (fields["ops_on_edgetpu"], fields["ops_on_cpu"]) == (3, 0)


@pytest.mark.tf
def test_edgetpu_format_end_to_end_with_fake_compiler(tmp_path, monkeypatch):
    keras = pytest.importorskip("keras")
    from edgekit.core.artifact import read_embedded
    from edgekit.core.types import ModelSpec
    from edgekit.export.tflite import ExportConfig, export_model

    _fake_compiler(tmp_path, monkeypatch, size=16)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu")(inp))
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(x))
    spec = ModelSpec(task="classify", decoder="classify", input_size=(16, 16), labels=("a", "b"))
    out = tmp_path / "exported" / "tiny_edgetpu.tflite"
    result = export_model(model, spec, ExportConfig(format="edgetpu", calib_samples=4, out=out))
    assert result.path == out and result.compiled is not None
    assert result.compiled.ops_on_edgetpu == 64 and result.compiled.on_chip_memory == "3.42MiB"
    data = out.read_bytes()
    assert read_tflite(data).contains_edgetpu_ops
    embedded = read_embedded(data)
    assert embedded.spec.decoder_params["export_format"] == "edgetpu" and embedded.labels == (
        "a",
        "b",
    )
    assert result.edgetpu_report["compiled"] is True
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny_edgetpu.tflite"]
