"""Backend choice, file validation and the Edge TPU delegate, with fake backends (no model
needed) plus a few checks against the real models in ../shared/data."""

from __future__ import annotations

import ctypes.util
import sys
import types
import warnings
from typing import ClassVar

import pytest

from edgekit.errors import BackendUnavailable, EdgeTPUUnavailable, ModelLoadError
from edgekit.runtime import interpreter as interp
from edgekit.runtime.interpreter import (
    BackendInfo,
    edgetpu_library,
    is_edgetpu_model,
    make_interpreter,
    resolve_backend,
    validate_model_bytes,
)

# The smallest bytes that pass validation: root offset 16, identifier "TFL3", padding.
FAKE_MODEL = (16).to_bytes(4, "little") + b"TFL3" + bytes(24)


class FakeInterpreter:
    """Records how it was built; ``allocate_tensors`` can be told to fail."""

    instances: ClassVar[list[FakeInterpreter]] = []
    fail_allocate: ClassVar[str | None] = None

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.allocated = False
        FakeInterpreter.instances.append(self)

    def allocate_tensors(self):
        if self.fail_allocate:
            raise RuntimeError(self.fail_allocate)
        self.allocated = True


def fake_module(name: str, cls=FakeInterpreter, delegate=None):
    mod = types.ModuleType(name)
    mod.Interpreter = cls
    mod.load_delegate = delegate or (lambda lib: f"delegate:{lib}")
    return mod


def fake_tensorflow():
    tf = types.ModuleType("tensorflow")
    tf.lite = types.SimpleNamespace(
        Interpreter=FakeInterpreter,
        experimental=types.SimpleNamespace(load_delegate=lambda lib: f"tf-delegate:{lib}"),
    )
    return tf


def importer_for(available: dict[str, types.ModuleType]):
    calls: list[str] = []

    def importer(name: str):
        calls.append(name)
        if name not in available:
            raise ImportError(f"No module named {name!r}")
        return available[name]

    importer.calls = calls
    return importer


@pytest.fixture(autouse=True)
def _reset_fake():
    FakeInterpreter.instances = []
    FakeInterpreter.fail_allocate = None
    yield


@pytest.fixture
def no_tflite_runtime_version(monkeypatch):
    """Pretend no tflite-runtime distribution is installed (its numpy<2 check stays quiet)."""
    monkeypatch.setattr(interp, "_dist_version", lambda dist: None)


# --- backend selection -----------------------------------------------------------------------


def test_first_available_backend_wins_in_documented_order(no_tflite_runtime_version):
    all_three = {
        "ai_edge_litert.interpreter": fake_module("ai_edge_litert.interpreter"),
        "tflite_runtime.interpreter": fake_module("tflite_runtime.interpreter"),
        "tensorflow": fake_tensorflow(),
    }
    imp = importer_for(all_three)
    assert resolve_backend(importer=imp).name == "ai_edge_litert"
    assert imp.calls == ["ai_edge_litert.interpreter"]

    imp = importer_for({k: v for k, v in all_three.items() if not k.startswith("ai_edge")})
    assert resolve_backend(importer=imp).name == "tflite_runtime"
    assert imp.calls == ["ai_edge_litert.interpreter", "tflite_runtime.interpreter"]

    imp = importer_for({"tensorflow": all_three["tensorflow"]})
    with pytest.warns(RuntimeWarning, match="deprecated"):
        backend = resolve_backend(importer=imp)
    assert backend.name == "tensorflow"
    assert backend.interpreter_cls is FakeInterpreter
    assert backend.load_delegate("x") == "tf-delegate:x"
    assert imp.calls == ["ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow"]


def test_no_backend_at_all_names_what_to_install(no_tflite_runtime_version):
    with pytest.raises(BackendUnavailable, match="pip install ai-edge-litert") as err:
        resolve_backend(importer=importer_for({}))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("forced", "pip_name"),
    [
        ("ai_edge_litert", "ai-edge-litert"),
        ("tflite_runtime", "tflite-runtime"),
        ("tensorflow", "tensorflow"),
    ],
)
def test_forced_backend_missing_names_its_package(forced, pip_name, no_tflite_runtime_version):
    others = {
        "ai_edge_litert.interpreter": fake_module("ai_edge_litert.interpreter"),
        "tflite_runtime.interpreter": fake_module("tflite_runtime.interpreter"),
        "tensorflow": fake_tensorflow(),
    }
    missing = next(k for k in others if k.startswith(forced))
    del others[missing]
    with pytest.raises(BackendUnavailable, match=f"pip install {pip_name}"):
        resolve_backend(forced, importer=importer_for(others))


def test_forced_backend_is_used_even_when_a_preferred_one_exists(no_tflite_runtime_version):
    imp = importer_for(
        {
            "ai_edge_litert.interpreter": fake_module("ai_edge_litert.interpreter"),
            "tflite_runtime.interpreter": fake_module("tflite_runtime.interpreter"),
        }
    )
    assert resolve_backend("tflite_runtime", importer=imp).name == "tflite_runtime"
    assert imp.calls == ["tflite_runtime.interpreter"]
    assert resolve_backend("litert", importer=imp).name == "ai_edge_litert"  # alias


def test_unknown_backend_name_is_rejected():
    with pytest.raises(BackendUnavailable, match="unknown interpreter backend 'onnx'"):
        resolve_backend("onnx", importer=importer_for({}))


def test_tflite_runtime_214_is_skipped_under_numpy2(monkeypatch):
    monkeypatch.setattr(
        interp, "_dist_version", lambda dist: "2.14.0" if "tflite" in dist else None
    )
    monkeypatch.setattr(interp, "_numpy_major", lambda: 2)
    imp = importer_for(
        {
            "tflite_runtime.interpreter": fake_module("tflite_runtime.interpreter"),
            "tensorflow": fake_tensorflow(),
        }
    )
    with pytest.warns(RuntimeWarning):
        assert resolve_backend(importer=imp).name == "tensorflow"
    assert "tflite_runtime.interpreter" not in imp.calls  # never imported: it would crash
    with pytest.raises(BackendUnavailable, match="needs numpy<2"):
        resolve_backend("tflite_runtime", importer=imp)


def test_backends_are_imported_through_sys_modules(monkeypatch, no_tflite_runtime_version):
    """The default importer honours sys.modules, so a missing package is simply skipped."""
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # import -> ImportError
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime", types.ModuleType("tflite_runtime"))
    monkeypatch.setitem(
        sys.modules, "tflite_runtime.interpreter", fake_module("tflite_runtime.interpreter")
    )
    assert resolve_backend().name == "tflite_runtime"


# --- make_interpreter with a fake backend ----------------------------------------------------


def test_make_interpreter_passes_threads_and_reports_them(no_tflite_runtime_version):
    imp = importer_for({"ai_edge_litert.interpreter": fake_module("ai_edge_litert.interpreter")})
    it, info = make_interpreter(FAKE_MODEL, threads=3, importer=imp)
    assert info == BackendInfo("ai_edge_litert", 3, None, info.version)
    assert it.allocated
    assert it.kwargs == {"model_content": FAKE_MODEL, "num_threads": 3}  # nothing disables XNNPACK
    _, info = make_interpreter(FAKE_MODEL, importer=imp)
    assert info.threads == interp.default_threads() >= 1
    with pytest.raises(ModelLoadError, match="threads"):
        make_interpreter(FAKE_MODEL, threads=0, importer=imp)


def test_allocation_failure_is_a_one_line_model_load_error(tmp_path, no_tflite_runtime_version):
    FakeInterpreter.fail_allocate = "Failed to allocate\nmemory for tensor 7"
    path = tmp_path / "m.tflite"
    path.write_bytes(FAKE_MODEL)
    imp = importer_for({"ai_edge_litert.interpreter": fake_module("ai_edge_litert.interpreter")})
    with pytest.raises(ModelLoadError, match="tensors cannot be allocated") as err:
        make_interpreter(path, importer=imp)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_interpreter_constructor_failure_is_a_model_load_error(no_tflite_runtime_version):
    class Refuses(FakeInterpreter):
        def __init__(self, **kwargs):
            raise ValueError("The model is not a valid Flatbuffer buffer")

    imp = importer_for({"ai_edge_litert.interpreter": fake_module("x", cls=Refuses)})
    with pytest.raises(ModelLoadError, match="not a valid Flatbuffer"):
        make_interpreter(FAKE_MODEL, importer=imp)


# --- Edge TPU --------------------------------------------------------------------------------

EDGETPU_MODEL = FAKE_MODEL + b"....edgetpu-custom-op...."


def test_edgetpu_library_names_per_os():
    assert edgetpu_library("Linux") == "libedgetpu.so.1"
    assert edgetpu_library("Windows") == "edgetpu.dll"
    assert edgetpu_library("Darwin") == "libedgetpu.1.dylib"
    assert is_edgetpu_model(EDGETPU_MODEL) and not is_edgetpu_model(FAKE_MODEL)


def test_edgetpu_missing_runtime_gives_clear_error_with_cpu_sibling(
    tmp_path, no_tflite_runtime_version
):
    tpu = tmp_path / "net_edgetpu.tflite"
    tpu.write_bytes(EDGETPU_MODEL)
    (tmp_path / "net.tflite").write_bytes(FAKE_MODEL)
    seen = []

    def loader(libname):
        seen.append(libname)
        raise OSError(f"{libname}: cannot open shared object file: No such file or directory")

    imp = importer_for({"ai_edge_litert.interpreter": fake_module("ai_edge_litert.interpreter")})
    with pytest.raises(EdgeTPUUnavailable) as err:
        make_interpreter(tpu, delegate_loader=loader, importer=imp)
    msg = str(err.value)
    assert seen == [edgetpu_library()]
    assert "\n" not in msg
    assert str(tpu) in msg and "libedgetpu1-std" in msg and "plug in" in msg
    assert str(tmp_path / "net.tflite") in msg  # the CPU alternative
    assert FakeInterpreter.instances == []  # never handed to the interpreter


def test_edgetpu_error_without_sibling_still_names_the_cpu_alternative(
    tmp_path, no_tflite_runtime_version
):
    tpu = tmp_path / "lonely_edgetpu.tflite"
    tpu.write_bytes(EDGETPU_MODEL)

    def loader(libname):
        raise ValueError("Failed to load delegate from libedgetpu.so.1\n")

    imp = importer_for({"ai_edge_litert.interpreter": fake_module("ai_edge_litert.interpreter")})
    with pytest.raises(EdgeTPUUnavailable, match="without `_edgetpu`") as err:
        make_interpreter(tpu, delegate_loader=loader, importer=imp)
    assert "\n" not in str(err.value)


def test_edgetpu_delegate_is_passed_to_the_interpreter(no_tflite_runtime_version):
    delegate = object()
    imp = importer_for({"ai_edge_litert.interpreter": fake_module("ai_edge_litert.interpreter")})
    it, info = make_interpreter(
        EDGETPU_MODEL, threads=1, delegate_loader=lambda lib: delegate, importer=imp
    )
    assert it.kwargs["experimental_delegates"] == [delegate]
    assert info.delegate == "edgetpu"


def test_edgetpu_default_loader_is_the_backends_load_delegate(no_tflite_runtime_version):
    imp = importer_for({"ai_edge_litert.interpreter": fake_module("ai_edge_litert.interpreter")})
    it, _ = make_interpreter(EDGETPU_MODEL, importer=imp)
    assert it.kwargs["experimental_delegates"] == [f"delegate:{edgetpu_library()}"]


# --- bad files -------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="not found") as err:
        make_interpreter(tmp_path / "nope.tflite")
    assert "nope.tflite" in str(err.value)


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(ModelLoadError, match="folder"):
        make_interpreter(tmp_path)


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"", "empty"),
        (b"\x10\x00\x00\x00TFL3", "truncated"),
        ((4096).to_bytes(4, "little") + b"TFL3" + bytes(64), "truncated"),
        (b"hello, this is a text file\nnot a model\n" * 4, "text file"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(100), "JPEG"),
        (b"PK\x03\x04" + bytes(100), "ZIP"),
        (bytes(range(256)), "TFL3"),
    ],
)
def test_bad_model_files_are_rejected_before_the_interpreter(tmp_path, content, what):
    path = tmp_path / "bad.tflite"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=what) as err:
        make_interpreter(path, importer=importer_for({}))  # no backend is even needed
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_validate_accepts_the_identifier():
    validate_model_bytes(FAKE_MODEL)


# --- the real runtime on real files ----------------------------------------------------------


def test_real_truncated_model_is_a_model_load_error(shared, tmp_path):
    data = shared("models", "mobilenet_v1_0.25_128_quant.tflite").read_bytes()
    path = tmp_path / "cut.tflite"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelLoadError) as err:
        make_interpreter(path, threads=1)
    assert "cut.tflite" in str(err.value) and "\n" not in str(err.value)


def test_real_edgetpu_model_without_runtime_is_quiet(shared, capfd):
    if ctypes.util.find_library("edgetpu"):
        pytest.skip("the Edge TPU runtime is installed here")
    path = shared("models", "movenet_single_pose_lightning_ptq_edgetpu.tflite")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warnings either
        with pytest.raises(EdgeTPUUnavailable) as err:
            make_interpreter(path, threads=1)
    msg = str(err.value)
    assert "libedgetpu1-std" in msg and "movenet_single_pose_lightning_ptq.tflite instead" in msg
    assert "Exception ignored" not in capfd.readouterr().err


def test_real_model_loads_with_litert(shared):
    pytest.importorskip("ai_edge_litert")
    it, info = make_interpreter(shared("models", "mobilenet_v1_0.25_128_quant.tflite"), threads=1)
    assert info.name == "ai_edge_litert" and info.threads == 1 and info.delegate is None
    assert list(it.get_input_details()[0]["shape"]) == [1, 128, 128, 3]
