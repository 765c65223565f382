"""The tf.data pipeline: geometry keeps pixels, boxes and keypoints aligned (letterbox, flip,
mosaic), flips swap left/right keypoints, crops mode, the encode_fn hook."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgekit.core.types import COCO_KEYPOINT_NAMES, ModelSpec
from edgekit.data import Dataset, ImageRecord
from edgekit.data.augment import AugmentConfig, flip_index

tf = pytest.importorskip("tensorflow")

from edgekit.data.pipeline import PipelineConfig, make_pipeline  # noqa: E402

RED_BOX = (0.2, 0.2, 0.5, 0.6)  # x0, y0, x1, y1 of the red rectangle in a 200x100 image
GREEN_BOX = (0.7, 0.1, 0.9, 0.4)
NO_AUG = dict(
    scale=(1.0, 1.0),
    aspect=0.0,
    translate=False,
    flip=0.0,
    brightness=0,
    contrast=0,
    saturation=0,
    hue=0,
)


def _synthetic(
    tmp_path: Path, n: int = 1, with_kps: bool = True, scale: int = 1, suffix: str = ".png"
) -> Dataset:
    img = np.zeros((100, 200, 3), np.uint8)  # RGB
    img[20:60, 40:100] = (255, 0, 0)
    img[10:40, 140:180] = (0, 255, 0)
    img = np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)
    kps = np.zeros((2, 17, 3), np.float32)
    kps[0, 0] = (0.35, 0.25, 2)  # nose
    kps[0, 5] = (0.25, 0.3, 2)  # left_shoulder
    kps[0, 6] = (0.45, 0.3, 2)  # right_shoulder
    kps[0, 11] = (0.3, 0.55, 1)  # left_hip
    recs = []
    for i in range(n):
        path = tmp_path / f"s{i}{suffix}"
        cv2.imwrite(str(path), img[..., ::-1])
        recs.append(
            ImageRecord(
                path,
                200 * scale,
                100 * scale,
                np.array([RED_BOX, GREEN_BOX]),
                np.array([0, 1]),
                kps if with_kps else None,
                None,
                i,
            )
        )
    return Dataset(tuple(recs), ("red", "green"), COCO_KEYPOINT_NAMES if with_kps else ())


def _mask_box(image: np.ndarray, channel: int) -> tuple[int, int, int, int]:
    """Pixel xyxy (exclusive end) of where ``channel`` dominates."""
    others = [c for c in range(3) if c != channel]
    mask = (image[..., channel] > 128) & (image[..., others].max(-1) < 100)
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _one(ds):
    image, targets = next(iter(ds))
    return image.numpy(), {k: v.numpy() for k, v in targets.items()}


def test_flip_swaps_left_right_keypoints_and_keeps_boxes_aligned(tmp_path):
    data = _synthetic(tmp_path)
    cfg = PipelineConfig(
        batch_size=None, augment=AugmentConfig(**{**NO_AUG, "flip": 1.0}), max_boxes=4
    )
    image, t = _one(make_pipeline(data, input_size=(50, 100), resize_mode="resize", config=cfg))
    assert image.shape == (50, 100, 3) and t["num_boxes"] == 2
    np.testing.assert_allclose(t["boxes"][0], [0.5, 0.2, 0.8, 0.6], atol=1e-5)  # mirrored red box
    np.testing.assert_allclose(t["boxes"][1], [0.1, 0.1, 0.3, 0.4], atol=1e-5)
    assert t["class_ids"].tolist() == [0, 1, -1, -1]
    # the pixels moved the same way as the boxes
    assert _mask_box(image, 0) == pytest.approx((50, 10, 80, 30), abs=1)
    assert _mask_box(image, 1) == pytest.approx((10, 5, 30, 20), abs=1)
    kp = t["keypoints"][0]
    np.testing.assert_allclose(
        kp[5], [0.55, 0.3, 2], atol=1e-5
    )  # left_shoulder = old right, mirrored
    np.testing.assert_allclose(kp[6], [0.75, 0.3, 2], atol=1e-5)
    np.testing.assert_allclose(kp[0], [0.65, 0.25, 2], atol=1e-5)  # nose mirrored in place
    np.testing.assert_allclose(kp[12], [0.7, 0.55, 1], atol=1e-5)  # right_hip = old left_hip
    assert kp[11, 2] == 0 and kp[16, 2] == 0
    # without the flip nothing is permuted
    cfg = PipelineConfig(batch_size=None, augment=AugmentConfig(**NO_AUG), max_boxes=4)
    _, t = _one(make_pipeline(data, input_size=(50, 100), resize_mode="resize", config=cfg))
    np.testing.assert_allclose(t["keypoints"][0, 5], [0.25, 0.3, 2], atol=1e-5)
    np.testing.assert_allclose(t["boxes"][0], RED_BOX, atol=1e-5)


def test_flip_index_matches_core_and_names():
    from edgekit.core.keypoints import COCO_FLIP_INDEX

    assert flip_index(COCO_KEYPOINT_NAMES) == list(COCO_FLIP_INDEX)
    assert flip_index(["nose", "left_eye", "right_eye", "hand_left", "hand_right"]) == [
        0,
        2,
        1,
        4,
        3,
    ]


def test_letterbox_and_normalization_follow_the_model_spec(tmp_path):
    data = _synthetic(tmp_path, with_kps=False)
    spec = ModelSpec(
        task="detect",
        decoder="yolo",
        input_size=(64, 64),
        normalization=(127.5, 127.5),
        resize_mode="letterbox",
    )
    cfg = PipelineConfig(batch_size=1, training=False)
    image, t = _one(make_pipeline(data, spec, cfg))
    assert (
        image.shape == (1, 64, 64, 3) and t["boxes"].shape == (1, 100, 4) and "keypoints" not in t
    )
    pixels = image[0] * 127.5 + 127.5
    np.testing.assert_allclose(pixels[0, 0], [114, 114, 114], atol=0.5)  # letterbox padding
    np.testing.assert_allclose(pixels[32, 2], [0, 0, 0], atol=0.5)  # image content
    # content is 64x32 centred: y' = 0.25 + y / 2
    np.testing.assert_allclose(t["boxes"][0, 0], [0.2, 0.35, 0.5, 0.55], atol=1e-5)
    assert _mask_box(pixels, 0) == pytest.approx((13, 22, 32, 35), abs=1)
    # the same geometry the runtime uses to map results back (edgekit.core.letterbox)
    from edgekit.core.letterbox import letterbox_transform

    expected = letterbox_transform((100, 200), (64, 64)).boxes_to_input(
        np.array([RED_BOX, GREEN_BOX])
    )
    np.testing.assert_allclose(t["boxes"][0, :2], expected, atol=1e-5)


@pytest.mark.parametrize(
    ("scale", "suffix", "out_hw"), [(1, ".png", (96, 128)), (4, ".jpg", (60, 80))]
)
def test_random_augmentation_keeps_pixels_and_boxes_aligned(tmp_path, scale, suffix, out_hw):
    # scale 4: an 800x400 JPEG, decoded at 1/4 or 1/8 scale for the small output
    data = _synthetic(tmp_path, n=4, scale=scale, suffix=suffix)
    oh, ow = out_hw
    for mosaic in (0.0, 1.0):
        aug = AugmentConfig(
            scale=(0.6, 1.6), mosaic=mosaic, brightness=0, contrast=0, saturation=0, hue=0
        )
        cfg = PipelineConfig(batch_size=8, augment=aug, repeat=True, seed=3, max_boxes=8)
        images, t = _one(
            make_pipeline(data, input_size=out_hw, resize_mode="letterbox", config=cfg)
        )
        assert images.shape == (8, oh, ow, 3)
        checked = 0
        for i in range(8):
            for k in range(int(t["num_boxes"][i])):
                x0, y0, x1, y1 = t["boxes"][i, k] * [ow, oh, ow, oh]
                assert 0 <= x0 < x1 <= ow and 0 <= y0 < y1 <= oh
                if x1 - x0 < 6 or y1 - y0 < 6:
                    continue
                inner = images[
                    i, int(y0) + 2 : int(np.ceil(y1)) - 2, int(x0) + 2 : int(np.ceil(x1)) - 2
                ]
                channel = 0 if t["class_ids"][i, k] == 0 else 1
                assert inner[..., channel].mean() > 200, (mosaic, i, k)
                assert inner[..., 2].mean() < 40, (mosaic, i, k)
                checked += 1
        assert checked >= 4


def test_classify_crops_and_encode_fn(tmp_path):
    data = _synthetic(tmp_path, with_kps=False)
    cfg = PipelineConfig(batch_size=2, training=False, mode="classify_crops", crop_context=0.0)
    images, labels = next(
        iter(make_pipeline(data, input_size=(32, 32), resize_mode="resize", config=cfg))
    )
    assert images.shape == (2, 32, 32, 3) and labels.numpy().tolist() == [0, 1]
    np.testing.assert_allclose(images.numpy()[0, 16, 16], [255, 0, 0], atol=1)
    np.testing.assert_allclose(images.numpy()[1, 16, 16], [0, 255, 0], atol=1)

    def encode(image, targets):
        return image, tf.one_hot(targets["class_ids"], 2)

    cfg = PipelineConfig(batch_size=1, training=False, max_boxes=3)
    _, y = next(iter(make_pipeline(data, input_size=(32, 32), config=cfg, encode_fn=encode)))
    np.testing.assert_allclose(y.numpy()[0], [[1, 0], [0, 1], [0, 0]])


def test_crowd_objects_are_left_out_of_training_targets(tmp_path):
    data = _synthetic(tmp_path, with_kps=False)
    rec = dataclasses.replace(data[0], iscrowd=np.array([True, False]))
    data = dataclasses.replace(data, images=(rec,))
    cfg = PipelineConfig(batch_size=1, training=False, max_boxes=2)
    _, t = _one(make_pipeline(data, input_size=(32, 64), resize_mode="resize", config=cfg))
    assert t["num_boxes"].tolist() == [1] and t["class_ids"].tolist() == [[1, -1]]


def test_fast_jpeg_decode_matches_full_decode(tmp_path):
    data = _synthetic(tmp_path, n=1, with_kps=False, scale=4, suffix=".jpg")
    outs = []
    for fast in (True, False):
        cfg = PipelineConfig(batch_size=1, training=False, fast_jpeg=fast)
        outs.append(
            _one(make_pipeline(data, input_size=(50, 100), resize_mode="letterbox", config=cfg))
        )
    (fast_img, fast_t), (full_img, full_t) = outs
    np.testing.assert_allclose(fast_t["boxes"], full_t["boxes"])
    assert np.abs(fast_img - full_img).mean() < 4.0
    assert _mask_box(fast_img[0], 0) == pytest.approx(_mask_box(full_img[0], 0), abs=1)
