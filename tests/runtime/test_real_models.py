"""The runtime on real third-party models, images and video from ../shared/data (skipped when
that folder is absent)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgekit.core.artifact import embed
from edgekit.core.types import Frame
from edgekit.errors import EdgeTPUUnavailable
from edgekit.runtime.model import Model
from edgekit.runtime.step import make_step

cv2 = pytest.importorskip("cv2")
pytest.importorskip("ai_edge_litert")

pytestmark = pytest.mark.shared

SSD = "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
MOVENET = "movenet_single_pose_lightning_ptq.tflite"


def rgb(path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@pytest.fixture
def ssd_model(shared):
    return Model.load(shared("models", SSD), threads=1)


def test_movenet_matches_coral_reference_on_squat(shared):
    model = Model.load(shared("models", MOVENET), threads=1, resize_mode="resize")
    assert (model.spec.decoder, model.spec.input_size, model.spec.input_dtype) == (
        "movenet",
        (192, 192),
        "uint8",
    )
    # pose_id, pose_score, keypoint_id, keypoint_score, keypoint_x, keypoint_y (normalized)
    ref = np.loadtxt(
        shared("models", "movenet_single_pose_lightning_ptq_reference.csv"),
        delimiter=",",
        skiprows=1,
    )
    assert ref.shape == (17, 6)
    (pose,) = model.predict(rgb(shared("images", "squat.bmp")), score_threshold=0.0).poses
    got = np.array([(k.x, k.y) for k in pose.keypoints])
    assert np.abs(got - ref[:, 4:6]).max() < 0.03


def test_movenet_within_21px_of_tensorflow_examples_truth(shared):
    # The truth came from MoveNet fed a square crop padded around the image: letterbox here
    # (the default for MoveNet); a plain stretch resize also stays within 21 px on these two.
    model = Model.load(shared("models", MOVENET), threads=1)
    assert model.spec.resize_mode == "letterbox"
    truth = np.loadtxt(
        shared("images", "tfex_pose", "pose_landmark_truth.csv"), delimiter=",", skiprows=1
    )
    for row, name in zip(truth.reshape(2, 17, 2), ("image1.png", "image2.jpeg"), strict=True):
        image = rgb(shared("images", "tfex_pose", name))
        h, w = image.shape[:2]
        (pose,) = model.predict(image, score_threshold=0.0).poses
        px = np.array([(k.x * w, k.y * h) for k in pose.keypoints])
        assert np.linalg.norm(px - row, axis=1).max() < 21, name


def test_ssd_finds_a_person_in_grace_hopper(ssd_model, shared):
    assert ssd_model.spec.decoder == "ssd_postprocess"
    assert ssd_model.labels[0] == "person" and len(ssd_model.labels) == 90  # embedded labelmap
    dets = ssd_model.predict(rgb(shared("images", "grace_hopper.bmp"))).detections
    people = [d for d in dets if d.label == "person" and d.score >= 0.5]
    assert people
    x0, y0, x1, y1 = max(people, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1])).box
    assert x1 - x0 > 0.5 and y1 - y0 > 0.5  # she fills most of the photo


def test_ssd_labels_from_a_file_match_the_embedded_map(shared):
    model = Model.load(shared("models", SSD), threads=1, labels=shared("models", "coco_labels.txt"))
    tie = [
        d
        for d in model.predict(rgb(shared("images", "grace_hopper.bmp"))).detections
        if d.class_id == 31
    ]
    assert tie and tie[0].label == "tie"


def test_ssd_counts_pedestrians_in_vtest(ssd_model, shared):
    cap = cv2.VideoCapture(str(shared("video", "vtest.avi")))
    step = make_step(ssd_model, score_threshold=0.5)
    persons, invoke_ms = [], []
    try:
        for index in range(20):
            cap.set(cv2.CAP_PROP_POS_FRAMES, index * 40)
            ok, bgr = cap.read()
            assert ok, f"cannot read frame {index * 40}"
            result = step(Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), index, 0, "vtest"))
            persons.append(sum(d.label == "person" for d in result.detections))
            invoke_ms.append(result.timings["invoke"])
            for d in result.detections:
                assert 0.0 <= d.box[0] < d.box[2] <= 1.0 and 0.0 <= d.box[1] < d.box[3] <= 1.0
    finally:
        cap.release()
    assert np.mean(persons) >= 4, persons
    assert set(result.timings) == {"preprocess", "invoke", "postprocess"} and min(invoke_ms) > 0


def test_mobilenet_v2_classifies_grace_hopper(shared):
    model = Model.load(
        shared("models", "mobilenet_v2_1.0_224_quant.tflite"),
        threads=1,
        labels=shared("models", "imagenet_labels.txt"),
    )
    assert model.spec.decoder_params["label_offset"] == 0  # 1001 outputs, 1001 labels
    top5 = model.predict(rgb(shared("images", "grace_hopper.bmp"))).classes
    assert len(top5) == 5
    labels = " | ".join(c.label for c in top5)
    assert "military uniform" in labels or "suit" in labels, labels
    assert top5[0].label == "military uniform"


def test_1000_labels_on_a_1001_class_model_are_shifted(shared):
    names = (shared("models", "imagenet_labels.txt").read_text().splitlines())[1:1001]
    model = Model.load(
        shared("models", "mobilenet_v1_0.25_128_quant.tflite"), threads=1, labels=names
    )
    assert model.spec.decoder_params["label_offset"] == -1
    top = model.predict(rgb(shared("images", "grace_hopper.bmp"))).classes[0]
    full = shared("models", "imagenet_labels.txt").read_text().splitlines()
    assert top.label == full[top.class_id]


def test_posenet_finds_a_person_in_squat(shared):
    model = Model.load(shared("models", "posenet_mobilenet_v1_075_481_641_quant.tflite"), threads=1)
    assert model.spec.decoder == "posenet" and model.spec.decoder_params["output_stride"] == 16
    poses = model.predict(rgb(shared("images", "squat.bmp"))).poses
    assert poses and poses[0].score > 0.3
    x0, y0, x1, y1 = poses[0].box
    assert x1 - x0 > 0.15 and y1 - y0 > 0.4  # one standing person, most of the frame's height


def test_edgetpu_model_gives_the_clear_error(shared):
    with pytest.raises(EdgeTPUUnavailable, match="libedgetpu1-std") as err:
        Model.load(
            shared("models", "movenet_single_pose_lightning_ptq_edgetpu.tflite"),
            delegate_loader=_no_tpu,
        )
    assert "\n" not in str(err.value) and MOVENET in str(err.value)


def _no_tpu(libname):
    raise OSError(f"{libname}: cannot open shared object file: No such file or directory")


def test_embedded_spec_overrides_inference(shared):
    data = shared("models", MOVENET).read_bytes()
    base = Model.load(data, threads=1).spec
    custom = dataclasses.replace(
        base, resize_mode="resize", name="squatter", decoder_params={"score_threshold": 0.9}
    )
    model = Model.load(embed(data, custom), threads=1)
    assert model.spec.resize_mode == "resize" and model.name == "squatter"
    assert model.predict(rgb(shared("images", "squat.bmp"))).poses == ()  # the spec's 0.9 applies


def test_predict_overhead_is_small(ssd_model, shared):
    import time

    image = rgb(shared("images", "grace_hopper.bmp"))
    tensor, transform = ssd_model.preprocess(image)
    outputs = ssd_model.invoke(tensor)

    def best(fn, n=5):
        times = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    pre = best(lambda: ssd_model.preprocess(image))
    post = best(lambda: ssd_model.postprocess(outputs, transform))
    assert pre < 0.005 and post < 0.005  # milliseconds-scale Python around a ~15-25 ms invoke
