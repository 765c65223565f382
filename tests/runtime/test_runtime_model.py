"""Model: spec inference, output resolution, quantization, preprocessing and frame mapping,
driven by a fake interpreter (no real model needed)."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from edgekit.core.types import Frame, ModelSpec
from edgekit.errors import ModelLoadError, UnsupportedModelError
from edgekit.runtime.decoders.posenet import resolve_outputs as resolve_posenet_outputs
from edgekit.runtime.decoders.ssd import resolve_outputs as resolve_ssd_outputs
from edgekit.runtime.interpreter import BackendInfo
from edgekit.runtime.model import Model, Prediction
from edgekit.runtime.preprocess import Preprocessor, dequantize, input_lut, quantize
from edgekit.runtime.spec import infer_spec, load_labels
from edgekit.runtime.step import make_step


def detail(name, shape, dtype=np.float32, quant=(0.0, 0), index=0):
    return {
        "name": name,
        "index": index,
        "shape": np.array(shape),
        "dtype": dtype,
        "quantization": quant,
    }


class FakeInterpreter:
    """Input/output details plus canned outputs keyed by tensor index."""

    def __init__(self, inputs, outputs, values=None, ops=None):
        self._inputs, self._outputs = inputs, outputs
        self.values = dict(values or {})
        self.ops = ops
        self.set_calls = []
        self.invokes = 0

    def get_input_details(self):
        return self._inputs

    def get_output_details(self):
        return self._outputs

    def set_tensor(self, index, value):
        self.set_calls.append((index, value))

    def invoke(self):
        self.invokes += 1

    def get_tensor(self, index):
        return self.values[index]

    def _get_ops_details(self):
        if self.ops is None:
            raise AttributeError("no ops")
        return self.ops


INFO = BackendInfo("fake", 1)
SSD_NAMES = (
    "TFLite_Detection_PostProcess",
    "TFLite_Detection_PostProcess:1",
    "TFLite_Detection_PostProcess:2",
    "TFLite_Detection_PostProcess:3",
)
SSD_SHAPES = ((1, 10, 4), (1, 10), (1, 10), (1,))
SSD_ROLES = ("boxes", "classes", "scores", "count")


def ssd_details(order, names=SSD_NAMES):
    """Output details with the four SSD outputs listed in ``order`` (a permutation of 0..3)."""
    return [detail(names[k], SSD_SHAPES[k], index=100 + k) for k in order]


# --- quantization ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "scale", "zp"),
    [(np.uint8, 0.0078125, 128), (np.int8, 0.05, -3), (np.int8, 1 / 255, -128)],
)
def test_quantize_dequantize_round_trip(dtype, scale, zp):
    info = np.iinfo(dtype)
    q = np.arange(info.min, info.max + 1).astype(dtype)
    x = dequantize(q, scale, zp)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(quantize(x, scale, zp, dtype), q)
    # Reals land within half a step, and out-of-range values saturate.
    reals = np.linspace(x.min(), x.max(), 1001)
    back = dequantize(quantize(reals, scale, zp, dtype), scale, zp)
    assert np.abs(back - reals).max() <= scale / 2 + 1e-6
    assert quantize(np.array([1e9, -1e9]), scale, zp, dtype).tolist() == [info.max, info.min]


def test_float_tensors_pass_through():
    x = np.array([0.25, -3.0], dtype=np.float32)
    assert dequantize(x, 0.5, 3) is x
    assert dequantize(np.array([3], dtype=np.uint8), 0.0, 0).tolist() == [3.0]


def test_input_lut_is_identity_for_raw_pixel_uint8_models():
    # MobileNet/SSD uint8: real = (q - 128) / 128; normalization (128, 128) keeps raw pixels.
    assert input_lut((128.0, 128.0), np.uint8, 0.0078125, 128) is None
    assert input_lut((0.0, 1.0), np.uint8, 0.0, 0) is None  # MoveNet: uint8 without quantization


def test_input_lut_int8_shifts_by_128_and_float_normalizes():
    lut = input_lut((128.0 + -128, 1 / 0.00390625), np.int8, 0.00390625, -128)  # real = pixel/256
    np.testing.assert_array_equal(lut, np.arange(256) - 128)
    lut = input_lut((127.5, 127.5), np.float32, 0.0, 0)
    assert lut.dtype == np.float32 and lut[0] == -1.0 and lut[255] == 1.0


# --- preprocessing ---------------------------------------------------------------------------


def test_preprocess_resize_and_letterbox_shapes_and_padding():
    img = np.full((100, 200, 3), 200, np.uint8)
    pre = Preprocessor((64, 64), resize_mode="letterbox", fill=7)
    tensor, t = pre(img)
    assert tensor.shape == (1, 64, 64, 3) and tensor.dtype == np.uint8
    assert t.resized_hw == (32, 64) and t.pad_y == 16
    assert (
        (tensor[0, :16] == 7).all()
        and (tensor[0, 16:48] == 200).all()
        and (tensor[0, 48:] == 7).all()
    )
    tensor, t = Preprocessor((64, 32), resize_mode="resize")(img)
    assert tensor.shape == (1, 64, 32, 3) and (tensor == 200).all() and t.mode == "resize"


def test_preprocess_applies_lut_and_keeps_rgb():
    img = np.zeros((8, 8, 3), np.uint8)
    img[..., 0] = 255  # pure red
    pre = Preprocessor((8, 8), lut=input_lut((127.5, 127.5), np.float32, 0.0, 0), dtype=np.float32)
    tensor, _ = pre(img)
    assert tensor.dtype == np.float32
    assert (tensor[0, ..., 0] == 1.0).all() and (tensor[0, ..., 1:] == -1.0).all()


def test_preprocess_rejects_wrong_images():
    pre = Preprocessor((8, 8))
    with pytest.raises(ValueError, match="uint8"):
        pre(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="RGB"):
        pre(np.zeros((4, 4, 5), np.uint8))
    assert pre(np.zeros((4, 4), np.uint8))[0].shape == (1, 8, 8, 3)  # grey -> RGB
    assert pre(np.zeros((4, 4, 4), np.uint8))[0].shape == (1, 8, 8, 3)  # RGBA -> RGB


# --- SSD output order ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_ssd_outputs_resolved_by_name_whatever_their_order(seed):
    order = list(range(4))
    random.Random(seed).shuffle(order)
    pos = resolve_ssd_outputs(ssd_details(order))
    assert {role: order[p] for role, p in pos.items()} == dict(
        zip(SSD_ROLES, range(4), strict=True)
    )


@pytest.mark.parametrize("seed", range(4))
def test_ssd_outputs_resolved_by_keyword_names(seed):
    names = ("detection_boxes", "detection_classes", "detection_scores", "num_detections")
    order = [2, 1, 3, 0] if seed == 0 else random.Random(seed).sample(range(4), 4)
    pos = resolve_ssd_outputs(ssd_details(order, names))
    assert {role: order[p] for role, p in pos.items()} == dict(
        zip(SSD_ROLES, range(4), strict=True)
    )


def test_ssd_op_output_order_beats_names():
    # Names lie (classes/scores swapped); the post-process op's own output list decides.
    details = ssd_details([0, 1, 2, 3], ("b", "scores", "classes", "n"))
    pos = resolve_ssd_outputs(details, postprocess_op_outputs=[100, 101, 102, 103])
    assert pos == {"boxes": 0, "classes": 1, "scores": 2, "count": 3}
    assert resolve_ssd_outputs(details)["classes"] == 2  # names alone


def test_ssd_without_telling_names_falls_back_to_tf1_order():
    details = ssd_details([3, 0, 1, 2], ("a", "b", "c", "d"))  # count, boxes, classes, scores
    assert resolve_ssd_outputs(details) == {"boxes": 1, "classes": 2, "scores": 3, "count": 0}


def test_ssd_wrong_outputs_are_unsupported():
    with pytest.raises(UnsupportedModelError):
        resolve_ssd_outputs(ssd_details([0, 1, 2]))
    bad = [
        detail("a", (1, 10, 4)),
        detail("b", (1, 10, 4)),
        detail("c", (1, 10)),
        detail("d", (1,)),
    ]
    with pytest.raises(UnsupportedModelError):
        resolve_ssd_outputs(bad)


def test_posenet_outputs_resolved_by_channels():
    shapes = {
        "heatmaps": (1, 31, 41, 17),
        "short_offsets": (1, 31, 41, 34),
        "mid_offsets": (1, 31, 41, 64),
    }
    for order in (
        ["mid_offsets", "heatmaps", "short_offsets"],
        ["short_offsets", "mid_offsets", "heatmaps"],
    ):
        details = [detail(f"x{i}", shapes[k]) for i, k in enumerate(order)]
        pos = resolve_posenet_outputs([*details, detail("seg", (1, 31, 41, 1))])
        assert {k: order[p] for k, p in pos.items()} == {k: k for k in shapes}


# --- spec inference --------------------------------------------------------------------------

U8_IN = detail("input", (1, 224, 224, 3), np.uint8, (0.0078125, 128))


def test_infer_spec_recognises_each_kind():
    ssd = infer_spec(
        [detail("in", (1, 300, 300, 3), np.uint8, (0.0078125, 128))], ssd_details([1, 0, 3, 2])
    )
    assert (ssd.task, ssd.decoder, ssd.input_size, ssd.resize_mode) == (
        "detect",
        "ssd_postprocess",
        (300, 300),
        "resize",
    )
    assert ssd.normalization == (127.5, 127.5)  # SSD's float domain [-1, 1], then quantized
    mv = infer_spec([detail("in", (1, 192, 192, 3), np.uint8)], [detail("kp", (1, 1, 17, 3))])
    assert (mv.decoder, mv.normalization, len(mv.keypoint_names)) == ("movenet", (0.0, 1.0), 17)
    pn = infer_spec(
        [detail("in", (1, 481, 641, 3), np.uint8, (0.0078125, 128))],
        [detail("h", (1, 31, 41, 17)), detail("s", (1, 31, 41, 34)), detail("m", (1, 31, 41, 64))],
    )
    assert (pn.decoder, pn.decoder_params["output_stride"]) == ("posenet", 16)
    cls = infer_spec([U8_IN], [detail("p", (1, 1001), np.uint8, (1 / 256, 0))])
    assert (cls.task, cls.decoder) == ("classify", "classify")
    yolo = infer_spec([detail("in", (1, 640, 640, 3))], [detail("o", (1, 84, 8400))])
    assert (yolo.decoder, yolo.resize_mode, yolo.normalization) == (
        "yolo",
        "letterbox",
        (0.0, 255.0),
    )
    fcls = infer_spec([detail("in", (1, 224, 224, 3))], [detail("p", (1, 1000))])
    assert fcls.normalization == (127.5, 127.5)
    i8 = infer_spec(
        [detail("in", (1, 96, 96, 3), np.int8, (1 / 255, -128))],
        [detail("p", (1, 10), np.int8, (1 / 256, -128))],
    )
    assert i8.normalization == (0.0, 255.0)  # int8 takes pixel - 128
    with pytest.raises(UnsupportedModelError, match="cannot tell"):
        infer_spec([U8_IN], [detail("a", (1, 7, 7, 5)), detail("b", (1, 3))])
    with pytest.raises(UnsupportedModelError, match="MultiPose"):
        infer_spec([U8_IN], [detail("a", (1, 6, 56))])


def test_label_offsets():
    names = tuple(f"c{i}" for i in range(1000))
    assert (
        infer_spec([U8_IN], [detail("p", (1, 1001))], labels=("background", *names)).decoder_params[
            "label_offset"
        ]
        == 0
    )
    assert (
        infer_spec([U8_IN], [detail("p", (1, 1001))], labels=names).decoder_params["label_offset"]
        == -1
    )
    ssd_in = [detail("in", (1, 300, 300, 3), np.uint8)]
    assert (
        infer_spec(ssd_in, ssd_details(range(4)), labels=("???", "person")).decoder_params[
            "label_offset"
        ]
        == 1
    )
    assert (
        infer_spec(ssd_in, ssd_details(range(4)), labels=("person", "???")).decoder_params[
            "label_offset"
        ]
        == 0
    )


def test_load_labels(tmp_path):
    plain = tmp_path / "a.txt"
    plain.write_text("person\nbicycle\n\n")
    assert load_labels(plain) == ("person", "bicycle")
    pairs = tmp_path / "b.txt"
    pairs.write_text("0  person\n2  car\n")
    assert load_labels(str(pairs)) == ("person", "", "car")
    assert load_labels(["x", "y"]) == ("x", "y")
    with pytest.raises(ModelLoadError, match=r"nope\.txt"):
        load_labels(tmp_path / "nope.txt")


# --- the Model over a fake interpreter -------------------------------------------------------


def ssd_model(order, *, resize_mode=None, labels=("person", "bicycle", "car")):
    outputs = ssd_details(order)
    values = {
        100: np.array(
            [[[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]] + [[0, 0, 0, 0]] * 8], np.float32
        ),
        101: np.array([[2.0, 0.0] + [0.0] * 8], np.float32),
        102: np.array([[0.9, 0.4] + [0.0] * 8], np.float32),
        103: np.array([2.0], np.float32),
    }
    inputs = [detail("in", (1, 100, 100, 3), np.uint8, (0.0078125, 128), index=7)]
    spec = infer_spec(inputs, outputs, labels=labels)
    if resize_mode:
        spec = dataclasses.replace(spec, resize_mode=resize_mode)
    return Model(FakeInterpreter(inputs, outputs, values), spec, backend=INFO)


def test_ssd_model_end_to_end_with_shuffled_outputs():
    m = ssd_model([3, 2, 0, 1])
    pred = m.predict(np.zeros((50, 80, 3), np.uint8), score_threshold=0.3)
    assert isinstance(pred, Prediction) and pred.poses == () and pred.classes == ()
    car, person = pred.detections
    assert (car.label, car.class_id, car.score) == ("car", 2, pytest.approx(0.9))
    assert car.box == pytest.approx((0.2, 0.1, 0.6, 0.5))  # yxyx -> xyxy, stretch resize
    assert person.label == "person"
    assert m.interpreter.set_calls[0][0] == 7 and m.interpreter.set_calls[0][1].shape == (
        1,
        100,
        100,
        3,
    )
    assert len(m.predict(np.zeros((50, 80, 3), np.uint8)).detections) == 1  # default 0.5


def test_letterbox_boxes_map_back_to_the_frame():
    m = ssd_model([0, 1, 2, 3], resize_mode="letterbox")
    # A 50x100 frame letterboxed into 100x100: rows 25..75 of the input hold the frame.
    pred = m.predict(np.zeros((50, 100, 3), np.uint8), score_threshold=0.3)
    car = pred.detections[0]
    # input box x 0.2..0.6, y 0.1..0.5 -> frame y (0.1*100-25)/50 clipped to 0 .. (50-25)/50
    assert car.box == pytest.approx((0.2, 0.0, 0.6, 0.5))


def test_quantized_classifier_is_dequantized_and_labelled():
    outputs = [detail("prob", (1, 4), np.uint8, (1 / 256, 0), index=5)]
    inputs = [U8_IN]
    values = {5: np.array([[0, 200, 50, 6]], np.uint8)}
    spec = infer_spec(inputs, outputs, labels=("background", "cat", "dog", "fox"))
    m = Model(FakeInterpreter(inputs, outputs, values), spec, backend=INFO)
    pred = m.predict(np.zeros((10, 10, 3), np.uint8), max_results=2)
    assert [(c.label, c.class_id) for c in pred.classes] == [("cat", 1), ("dog", 2)]
    assert pred.classes[0].score == pytest.approx(200 / 256)
    raw = m.invoke(np.zeros((1, 224, 224, 3), np.uint8))
    assert raw[0].dtype == np.uint8  # invoke returns raw outputs; postprocess dequantizes


def test_movenet_model_maps_keypoints_through_letterbox():
    outputs = [detail("kp", (1, 1, 17, 3), index=3)]
    inputs = [detail("in", (1, 192, 192, 3), np.uint8)]
    kps = np.zeros((1, 1, 17, 3), np.float32)
    kps[..., 0], kps[..., 1], kps[..., 2] = 0.5, 0.25, 0.9  # y, x, score
    m = Model(FakeInterpreter(inputs, outputs, {3: kps}), infer_spec(inputs, outputs), backend=INFO)
    assert m.spec.resize_mode == "letterbox"
    pose = m.predict(np.zeros((100, 200, 3), np.uint8)).poses[0]
    # 200 wide -> full width; x unchanged, y=0.5 is the middle of the frame.
    assert (pose.keypoints[0].x, pose.keypoints[0].y) == pytest.approx((0.25, 0.5))
    assert pose.score == pytest.approx(0.9)
    assert m.predict(np.zeros((10, 10, 3), np.uint8), score_threshold=0.95).poses == ()


def test_step_records_timings_with_the_given_clock():
    m = ssd_model([0, 1, 2, 3])
    ticks = iter([0.0, 0.001, 0.011, 0.0115])
    step = make_step(m, clock=lambda: next(ticks), score_threshold=0.3)
    frame = Frame(np.zeros((20, 20, 3), np.uint8), 4, 123, "test")
    result = step(frame)
    assert result.frame is frame and len(result.detections) == 2
    assert result.timings == pytest.approx({"preprocess": 1.0, "invoke": 10.0, "postprocess": 0.5})
    with pytest.raises(TypeError, match="unexpected"):
        make_step(m, score=0.5)


def test_unknown_decoder_in_spec_is_rejected():
    inputs, outputs = [U8_IN], [detail("p", (1, 4))]
    spec = ModelSpec(task="classify", decoder="magic", input_size=(224, 224))
    with pytest.raises(UnsupportedModelError, match="magic"):
        Model(FakeInterpreter(inputs, outputs), spec, backend=INFO)


def test_runtime_imports_without_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, edgekit.runtime as r; assert 'cv2' not in sys.modules; "
        "import edgekit.runtime.model, edgekit.runtime.step; r.Model; "
        "bad = [m for m in ('tensorflow', 'keras', 'ai_edge_litert') if m in sys.modules]; "
        "assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_yolo_model_decodes_pixels_and_maps_through_letterbox():
    inputs = [detail("in", (1, 64, 64, 3), np.float32)]
    outputs = [detail("out", (1, 6, 8), index=9)]
    pred = np.zeros((1, 6, 8), np.float32)  # rows cx, cy, w, h, score(c0), score(c1)
    pred[0, :, 0] = [32, 32, 32, 16, 0.1, 0.8]  # centred box in input pixels, class 1
    pred[0, :, 1] = [33, 32, 30, 16, 0.1, 0.7]  # overlaps -> suppressed by NMS
    pred[0, :, 2] = [10, 10, 4, 4, 0.05, 0.1]  # below threshold
    spec = infer_spec(inputs, outputs, labels=("cat", "dog"))
    m = Model(FakeInterpreter(inputs, outputs, {9: pred}), spec, backend=INFO)
    # A 32x64 frame letterboxed into 64x64: rows 16..48 of the input hold the frame.
    (det,) = m.predict(np.zeros((32, 64, 3), np.uint8), score_threshold=0.5).detections
    assert (det.label, det.class_id, det.score) == ("dog", 1, pytest.approx(0.8))
    # input y 24..40 px -> frame rows (24-16)/32 .. (40-16)/32
    assert det.box == pytest.approx((0.25, 0.25, 0.75, 0.75))


def test_ssd_raw_spec_with_anchors():
    inputs = [detail("in", (1, 32, 32, 3), np.uint8)]
    outputs = [detail("cls", (1, 2, 3), index=1), detail("box", (1, 2, 4), index=2)]
    anchors = [[0.5, 0.5, 0.5, 0.5], [0.25, 0.25, 0.2, 0.2]]  # cy, cx, h, w
    spec = ModelSpec(
        task="detect",
        decoder="ssd_raw",
        input_size=(32, 32),
        labels=("a", "b"),
        decoder_params={"anchors": anchors, "has_background": True},
    )
    values = {
        1: np.array([[[0.1, 0.9, 0.0], [0.9, 0.05, 0.05]]], np.float32),
        2: np.zeros((1, 2, 4), np.float32),  # boxes equal to the anchors
    }
    m = Model(FakeInterpreter(inputs, outputs, values), spec, backend=INFO)
    (det,) = m.predict(np.zeros((32, 32, 3), np.uint8)).detections
    assert (det.label, det.class_id) == ("a", 0)
    assert det.box == pytest.approx((0.25, 0.25, 0.75, 0.75))


def test_embedded_ssd_spec_positions_yield_to_the_ops_output_order(tmp_path):
    from edgekit.runtime import spec as spec_mod

    outputs = ssd_details([2, 0, 3, 1])  # scores, boxes, count, classes
    spec = ModelSpec(
        task="detect",
        decoder="ssd_postprocess",
        input_size=(100, 100),
        decoder_params={"outputs": {"boxes": 0, "classes": 1, "scores": 2, "count": 3}},
    )
    fake = FakeInterpreter(
        [detail("in", (1, 100, 100, 3), np.uint8)],
        outputs,
        ops=[
            {"op_name": "TFLite_Detection_PostProcess", "outputs": np.array([100, 101, 102, 103])}
        ],
    )
    completed = spec_mod.complete_spec(spec, outputs, spec_mod.postprocess_op_outputs(fake))
    assert completed.decoder_params["outputs"] == {
        "boxes": 1,
        "classes": 3,
        "scores": 0,
        "count": 2,
    }
    no_ops = spec_mod.complete_spec(spec, outputs, None)
    assert no_ops.decoder_params["outputs"] == spec.decoder_params["outputs"]
