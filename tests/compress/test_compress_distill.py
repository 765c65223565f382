"""Distillation: the loss, the teacher cache, the linear probe, video frames, pseudo-labels."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras

from edgekit.compress.distill import (
    Distiller,
    accuracy,
    load_classify_data,
    teacher_targets,
    train_classifier,
)
from edgekit.compress.teacher import (
    KerasTeacher,
    LinearProbe,
    TeacherCache,
    TFLiteTeacher,
    pseudo_label,
)
from edgekit.errors import UsageError
from edgekit.train.pseudo_label import frames_from_video, merge_detections
from edgekit.zoo.registry import get_entry


def _student(size=32, n=3, seed=0):
    """A tiny classifier with the zoo's layer names (``logits`` -> ``predictions``)."""
    keras.utils.set_random_seed(seed)
    x = inp = keras.Input((size, size, 3), name="image")
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(n, name="logits")(x)
    return keras.Model(inp, keras.layers.Softmax(name="predictions")(x), name="mobilenet_v2")


def test_kl_loss_matches_hand_computation():
    s = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="logits")])
    d = Distiller(s, alpha=0.5, temperature=2.0)
    student = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]], np.float32)
    teacher = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]], np.float32)
    labels = np.array([0, -1])  # the second row is unlabelled: soft term only
    hard, soft = (float(v) for v in d._kl_terms(labels, teacher, student))

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    assert hard == pytest.approx(-np.log(softmax(student[0])[0]), rel=1e-5)
    pt, ps = softmax(teacher / 2), softmax(student / 2)
    kl = (pt * (np.log(pt) - np.log(ps))).sum(-1).mean() * 4
    assert soft == pytest.approx(kl, rel=1e-5)


def test_distiller_validates_arguments():
    s = _student()
    with pytest.raises(UsageError):
        Distiller(s, alpha=1.5)
    with pytest.raises(UsageError):
        Distiller(s, temperature=0)
    with pytest.raises(UsageError):
        Distiller(s, soft_loss="mse", alpha=0.5)


def test_train_with_cached_teacher_and_keras_teacher(image_folder, tmp_path):
    student = _student()
    spec = get_entry("mobilenet_v2").spec(student)
    data = load_classify_data(image_folder, spec, split="train", flip=True)
    assert len(data) == 2 * int((~data.flipped).sum()) and data.x.shape[1:] == (32, 32, 3)
    teacher_model = _student(seed=1)
    teacher = KerasTeacher(teacher_model, spec)
    cache = TeacherCache(tmp_path / "cache")
    logits = teacher_targets(teacher, data, cache)
    assert logits.shape == (len(data), 3) and cache.misses == len(data) and cache.hits == 0
    again = teacher_targets(teacher, data, cache)
    assert cache.hits == len(data) and np.array_equal(logits, again)
    before = [w.copy() for w in student.get_weights()]
    hist = train_classifier(student, data, teacher_logits=logits, epochs=1, batch_size=16)
    assert {"loss", "hard", "soft"} <= set(hist) and hist["soft"][0] > 0
    assert any(not np.array_equal(a, b) for a, b in zip(before, student.get_weights(), strict=True))
    # a Keras teacher run on each batch instead of cached targets
    hist = train_classifier(student, data, teacher=teacher_model, epochs=1, batch_size=16)
    assert hist["soft"][0] > 0
    assert 0.0 <= accuracy(student, data) <= 1.0


def test_hard_only_training_learns(image_folder):
    student = _student()
    spec = get_entry("mobilenet_v2").spec(student)
    data = load_classify_data(image_folder, spec, split="all", flip=True)
    hist = train_classifier(student, data, epochs=6, batch_size=8, learning_rate=1e-2)
    assert hist["soft"][-1] == 0.0  # no teacher: the soft term is off
    assert hist["hard"][-1] < hist["hard"][0]
    assert accuracy(student, data) > 0.5


def test_cache_key_follows_mtime(tmp_path, image_folder):
    class Counting:
        key = "counting"
        calls = 0

        def outputs(self, image):
            Counting.calls += 1
            return image.mean(axis=(0, 1))

    img = next((image_folder / "red").glob("*.png"))
    copy = tmp_path / "a.png"
    copy.write_bytes(img.read_bytes())
    cache = TeacherCache(tmp_path / "c")
    a = cache.get(Counting(), copy)
    cache.get(Counting(), copy)
    flipped = cache.get(Counting(), copy, "flip")
    assert Counting.calls == 2 and np.allclose(a, flipped)
    os.utime(copy, ns=(1, 1))
    cache.get(Counting(), copy)
    assert Counting.calls == 3


def test_linear_probe_maps_teacher_space():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    x = rng.normal(size=(120, 20)).astype(np.float32)
    x[np.arange(120), y * 5] += 4.0
    probe = LinearProbe.fit(x, y, 3)
    assert (probe(x).argmax(1) == y).mean() > 0.95
    with pytest.raises(UsageError):
        LinearProbe.fit(x[:5], y[:4], 3)
    # out-of-fold logits: no row is scored by a probe that saw it (or its group)
    noise = rng.normal(size=(120, 20)).astype(np.float32)
    groups = np.arange(120) // 2
    oof = LinearProbe.cross_fit(noise, y, 3, groups=groups)
    fitted = LinearProbe.fit(noise, y, 3)(noise)
    assert (fitted.argmax(1) == y).mean() > (oof.argmax(1) == y).mean() + 0.2


def test_frames_from_video(tmp_path):
    import cv2

    path = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(10):
        w.write(np.full((48, 64, 3), i * 20, np.uint8))
    w.release()
    frames = frames_from_video(path, 3, tmp_path / "frames")
    assert [f.name for f in frames] == [f"v_{i:06d}.jpg" for i in (0, 3, 6, 9)]
    assert frames_from_video(path, 3, tmp_path / "frames", max_frames=2) == frames[:2]
    with pytest.raises(UsageError):
        frames_from_video(path, 0, tmp_path)


def test_merge_keeps_human_labels_and_adds_new_teacher_boxes():
    human = np.array([[0.1, 0.1, 0.4, 0.4]])
    teacher = np.array([[0.11, 0.1, 0.4, 0.41], [0.6, 0.6, 0.9, 0.9], [0.1, 0.1, 0.4, 0.4]])
    boxes, ids = merge_detections(human, [0], teacher, [0, 0, 1])
    assert boxes.shape == (3, 4) and ids.tolist() == [0, 0, 1]


def test_pseudo_labels_from_the_ssd_teacher(shared, tmp_path):
    model = shared("models", "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite")
    video = shared("video", "vtest.avi")
    frames = frames_from_video(video, 200, tmp_path / "frames", max_frames=2)
    teacher = TFLiteTeacher(model, threads=1)
    cache = TeacherCache(tmp_path / "cache")
    ds = pseudo_label(teacher, frames, ["person"], score_threshold=0.5, cache=cache)
    assert len(ds) == 2 and ds.num_boxes >= 2 and set(ds.images[0].class_ids.tolist()) == {0}
    assert np.all((ds.images[0].boxes >= 0) & (ds.images[0].boxes <= 1))
    again = pseudo_label(teacher, frames, ["person"], score_threshold=0.5, cache=cache)
    assert cache.hits == 2 and again.num_boxes == ds.num_boxes


def test_pose_pseudo_labels_from_movenet(shared):
    teacher = TFLiteTeacher(shared("models", "movenet_single_pose_lightning_ptq.tflite"), threads=1)
    ds = pseudo_label(teacher, [shared("images", "squat.bmp")], ["person"], score_threshold=0.3)
    rec = ds.images[0]
    assert rec.num_objects == 1 and rec.keypoints.shape == (1, 17, 3)
    assert (rec.keypoints[0, :, 2] == 2).sum() >= 10


def _two_heads(seed):
    """A tiny detector-like model: box and class heads over one feature map."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((16, 16, 3), name="image")
    f = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    boxes = keras.layers.Reshape((-1, 4), name="box_encodings")(keras.layers.Conv2D(4, 1)(f))
    logits = keras.layers.Reshape((-1, 3), name="class_logits")(keras.layers.Conv2D(3, 1)(f))
    return keras.Model(inp, [boxes, logits])


def test_mse_head_matching_pulls_student_heads_to_the_teacher():
    student, teacher = _two_heads(0), _two_heads(1)
    x = np.random.default_rng(0).uniform(-1, 1, (8, 16, 16, 3)).astype(np.float32)
    d = Distiller(student, teacher, alpha=1.0, soft_loss="mse")
    assert not d.teacher.trainable
    d.compile(optimizer=keras.optimizers.Adam(1e-2))
    t_before = [w.copy() for w in teacher.get_weights()]
    soft = d.fit(x, np.zeros((8, 1), np.float32), epochs=5, batch_size=8, verbose=0).history["soft"]
    assert soft[-1] < 0.7 * soft[0]
    assert all(np.array_equal(a, b) for a, b in zip(t_before, teacher.get_weights(), strict=True))
    # with a task loss next to it
    hard = keras.losses.MeanSquaredError()
    d2 = Distiller(
        _two_heads(2), teacher, alpha=0.5, soft_loss="mse", hard_loss=lambda y, p: hard(y, p[0])
    )
    d2.compile(optimizer=keras.optimizers.Adam(1e-2))
    hist = d2.fit(x, np.zeros((8, 64, 4), np.float32), epochs=1, batch_size=8, verbose=0).history
    assert hist["hard"][0] > 0 and hist["soft"][0] > 0
