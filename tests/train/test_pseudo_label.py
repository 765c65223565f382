"""Teacher pseudo-labels: human labels win, only trained classes kept, crops map boxes and
keypoints exactly; plus one run of the real teachers on real images (shared data)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from shared_data import shared_path

from edgekit.core.types import Detection, Keypoint, ModelSpec, Pose
from edgekit.data import Dataset, ImageRecord, read_dataset
from edgekit.errors import DatasetError, UsageError
from edgekit.runtime.model import Prediction
from edgekit.train.pseudo_label import (
    PersonCrop,
    build_detection_dataset,
    build_pose_dataset,
    crop_square,
    human_labels_for,
    person_crops,
    square_box,
)


class FakeDetector:
    """Returns fixed detections (normalized boxes) for every image."""

    spec = ModelSpec(task="detect", input_size=(64, 64), decoder="ssd_postprocess")
    path = Path("fake_detector.tflite")

    def __init__(self, detections):
        self.detections = tuple(detections)

    def predict(self, image, score_threshold=0.5):
        return Prediction(
            detections=tuple(d for d in self.detections if d.score >= score_threshold)
        )


class FakePose:
    """A pose teacher that finds a bright pixel blob's centre and puts all keypoints there,
    with scores alternating 0.9 / 0.1."""

    spec = ModelSpec(task="pose", input_size=(64, 64), decoder="movenet")
    path = Path("fake_pose.tflite")

    def predict(self, image, score_threshold=0.0):
        ys, xs = np.nonzero(image[..., 0] > 200)
        h, w = image.shape[:2]
        x, y = (xs.mean() + 0.5) / w, (ys.mean() + 0.5) / h
        kps = tuple(Keypoint(x, y, 0.9 if i % 2 == 0 else 0.1) for i in range(17))
        return Prediction(poses=(Pose(kps, 0.9),))


def _image(path: Path, size=(80, 120), blob=None) -> Path:
    img = np.zeros((*size, 3), np.uint8)
    if blob is not None:
        x0, y0, x1, y1 = blob
        img[y0:y1, x0:x1] = 255
    cv2.imwrite(str(path), img)
    return path


def test_human_labels_keep_only_trained_classes_renumbered(tmp_path):
    rec = ImageRecord(
        tmp_path / "a.jpg",
        100,
        100,
        np.array([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1], [0.1, 0.1, 0.2, 0.2]]),
        np.array([2, 0, 1]),
    )
    boxes, ids = human_labels_for(rec, ("person", "car", "dog"), ("dog", "person"))
    np.testing.assert_allclose(boxes, [[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]])
    assert ids.tolist() == [0, 1]


def test_detection_dataset_human_labels_win(tmp_path):
    (tmp_path / "src").mkdir()
    img = _image(tmp_path / "src" / "0001.jpg")
    human = Dataset(
        (
            ImageRecord(
                img,
                120,
                80,
                np.array([[0.1, 0.1, 0.4, 0.9], [0.6, 0.6, 0.7, 0.7]]),
                np.array([0, 1]),
            ),
        ),
        ("person", "cat"),
        source_format="yolo",
        root=tmp_path / "src",
    )
    teacher = FakeDetector(
        [
            Detection((0.11, 0.1, 0.41, 0.88), 0, 0.9, "person"),  # duplicates the human box
            Detection((0.6, 0.1, 0.9, 0.5), 0, 0.8, "Person"),  # a person the human missed
            Detection((0.6, 0.6, 0.7, 0.7), 16, 0.9, "cat"),  # a class we do not train
            Detection((0.0, 0.0, 0.2, 0.2), 0, 0.3, "person"),  # below the threshold
        ]
    )
    ds = build_detection_dataset(tmp_path / "out", teacher, labelled=human, classes=("person",))
    assert len(ds) == 1 and ds.class_names == ("person",)
    rec = ds.images[0]
    np.testing.assert_allclose(rec.boxes, [[0.1, 0.1, 0.4, 0.9], [0.6, 0.1, 0.9, 0.5]], atol=1e-6)
    assert rec.class_ids.tolist() == [0, 0]
    back = read_dataset(tmp_path / "out" / "data.yaml", "yolo")
    assert back.class_names == ("person",)
    np.testing.assert_allclose(back.images[0].boxes, rec.boxes, atol=1e-5)
    assert back.images[0].path.is_file()
    twice = build_detection_dataset(tmp_path / "x2", teacher, labelled=human, repeat_labelled=2)
    assert len(twice) == 2 and twice.images[1].path.name == "labelled_r1_0001.jpg"
    np.testing.assert_allclose(twice.images[1].boxes, rec.boxes)


def test_detection_dataset_video_frames_teacher_only(tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(7):
        writer.write(np.full((48, 64, 3), i * 30, np.uint8))
    writer.release()
    teacher = FakeDetector([Detection((0.2, 0.2, 0.5, 0.8), 0, 0.7, "person")])
    ds = build_detection_dataset(tmp_path / "out", teacher, videos=[video], every_n=3)
    assert len(ds) == 3  # frames 0, 3, 6
    assert all(r.class_ids.tolist() == [0] for r in ds.images)
    assert all((r.width, r.height) == (64, 48) for r in ds.images)
    assert len(list((tmp_path / "out" / "labels").glob("*.txt"))) == 3


def test_detection_dataset_needs_images_and_classes(tmp_path):
    teacher = FakeDetector([])
    with pytest.raises(UsageError):
        build_detection_dataset(tmp_path, teacher)
    with pytest.raises(UsageError):
        build_detection_dataset(tmp_path, teacher, images=[tmp_path / "x.jpg"], classes=())
    with pytest.raises(UsageError):
        build_detection_dataset(tmp_path, teacher, images=[tmp_path / "x.jpg"], repeat_labelled=0)


def test_square_box_and_crop_map_pixels_exactly():
    box = np.array([0.25, 0.1, 0.5, 0.9])  # 50x80 px in a 200x100 image
    sq = square_box(box, 200, 100, enlarge=1.25)
    assert sq[2] - sq[0] == pytest.approx(100.0) and sq[3] - sq[1] == pytest.approx(100.0)
    assert ((sq[0] + sq[2]) / 2, (sq[1] + sq[3]) / 2) == pytest.approx((75.0, 50.0))
    img = np.zeros((100, 200, 3), np.uint8)
    img[40:60, 70:80] = 255  # a 10x20 blob at the crop's centre
    patch = crop_square(img, sq, 50)
    assert patch.shape == (50, 50, 3)
    ys, xs = np.nonzero(patch[..., 0] > 128)
    assert xs.mean() == pytest.approx(24.5, abs=1.0) and ys.mean() == pytest.approx(24.5, abs=1.0)
    # outside the image: black
    corner = crop_square(img, np.array([-50.0, -50.0, 50.0, 50.0]), 20)
    assert corner[:10, :10].max() == 0


def test_person_crops_filters_by_class_size_and_crowd(tmp_path):
    ds = Dataset(
        (
            ImageRecord(
                tmp_path / "a.jpg",
                400,
                200,
                np.array([[0, 0, 0.2, 0.5], [0, 0, 0.05, 0.1], [0.5, 0, 1, 1], [0, 0, 0.5, 0.5]]),
                np.array([0, 0, 1, 0]),
                iscrowd=np.array([False, False, False, True]),
            ),
        ),
        ("person", "car"),
    )
    crops = person_crops(ds, min_size_px=48)
    assert len(crops) == 1 and crops[0].human
    np.testing.assert_allclose(crops[0].box, [0, 0, 0.2, 0.5])
    assert person_crops(ds, min_size_px=10, human=False)[1].human is False
    with pytest.raises(DatasetError):
        person_crops(Dataset((), ("car",)))


def test_pose_dataset_labels_crops_with_teacher_keypoints(tmp_path):
    # a white blob at pixels x 40..60, y 20..60 of a 120x80 image; its person box is the blob
    img = _image(tmp_path / "p.jpg", blob=(40, 20, 60, 60))
    box = np.array([40 / 120, 20 / 80, 60 / 120, 60 / 80], np.float32)
    ds = build_pose_dataset(
        tmp_path / "pose",
        FakePose(),
        [PersonCrop(img, box, True)],
        size=64,
        enlarge=1.6,
        min_keypoints=5,
    )
    assert len(ds) == 1 and ds.keypoint_names[0] == "nose"
    rec = ds.images[0]
    # square side = 40 px * 1.6 = 64 px centred on (50, 40): the blob maps to x 22..42, y 12..52
    np.testing.assert_allclose(rec.boxes[0], [22 / 64, 12 / 64, 42 / 64, 52 / 64], atol=1e-5)
    kp = rec.keypoints[0]
    np.testing.assert_allclose(kp[:, 0], 0.5, atol=0.03)
    assert kp[::2, 2].tolist() == [2.0] * 9 and kp[1::2, 2].tolist() == [0.0] * 8
    back = read_dataset(tmp_path / "pose" / "data.yaml", "yolo")
    assert back.keypoint_names and back.images[0].keypoints.shape == (1, 17, 3)


def test_pose_dataset_skips_crops_with_few_keypoints(tmp_path):
    img = _image(tmp_path / "p.jpg", blob=(40, 20, 60, 60))
    crop = PersonCrop(img, np.array([0.3, 0.2, 0.5, 0.8], np.float32), True)
    with pytest.raises(UsageError):
        build_pose_dataset(tmp_path / "pose", FakePose(), [crop], size=32, min_keypoints=10)
    with pytest.raises(UsageError):
        build_pose_dataset(tmp_path / "pose2", FakeDetector([]), [crop], size=32)


@pytest.mark.shared
def test_real_teachers_label_coco_and_video(tmp_path):
    det_teacher = shared_path("models", "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite")
    pose_teacher = shared_path("models", "movenet_single_pose_lightning_ptq.tflite")
    coco = read_dataset(shared_path("coco128"), "yolo").subset(range(4))
    ds = build_detection_dataset(
        tmp_path / "det",
        det_teacher,
        labelled=coco,
        videos=[shared_path("video", "vtest.avi")],
        every_n=200,
    )
    assert len(ds) == 4 + 4  # frames 0, 200, 400, 600
    # the labelled images keep every human person box
    for rec, src in zip(ds.images[:4], coco.images, strict=True):
        assert rec.num_objects >= int((src.class_ids == 0).sum())
    # the pedestrians of vtest are found by the teacher
    assert sum(r.num_objects for r in ds.images[4:]) >= 8
    crops = person_crops(ds, min_size_px=40, human=False)
    pose = build_pose_dataset(tmp_path / "pose", pose_teacher, crops[:6], size=96)
    assert 1 <= len(pose) <= 6
    labelled = np.concatenate([r.keypoints[0, :, 2] for r in pose.images])
    assert (labelled > 0).mean() > 0.3


def test_reweight_dataset_repeats_and_drops(tmp_path):
    from edgekit.train.pseudo_label import reweight_dataset

    recs = []
    for name in ("a_video_1.jpg", "b_labelled_2.jpg"):
        _image(tmp_path / name)
        recs.append(
            ImageRecord(tmp_path / name, 120, 80, np.array([[0.1, 0.1, 0.5, 0.5]]), np.array([0]))
        )
    ds = Dataset(tuple(recs), ("person",), root=tmp_path)
    out = reweight_dataset(ds, tmp_path / "rw", lambda r: 0 if "_video_" in r.path.name else 3)
    assert [r.path.name for r in out.images] == [
        "b_labelled_2.jpg",
        "r1_b_labelled_2.jpg",
        "r2_b_labelled_2.jpg",
    ]
    back = read_dataset(tmp_path / "rw" / "data.yaml", "yolo")
    assert len(back) == 3 and back.class_names == ("person",)
    with pytest.raises(UsageError):
        reweight_dataset(ds, tmp_path / "none", lambda r: 0)
