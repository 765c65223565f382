"""Datasets: one in-memory representation (:class:`Dataset` of :class:`ImageRecord`, normalized
xyxy boxes), readers and writers for COCO JSON, YOLO txt and Pascal VOC, a checker, a stable
split, and (``edgekit.data.pipeline``, TensorFlow) the ``tf.data`` input pipeline.

Everything importable from here is numpy/standard library only (no TensorFlow)."""

from edgekit.core.types import COCO80_CATEGORY_IDS, COCO80_NAMES
from edgekit.data.check import CheckReport, check_dataset
from edgekit.data.coco import read_coco, to_coco_json, write_coco_json
from edgekit.data.dataset import Dataset, ImageRecord, Problem, Problems
from edgekit.data.load import detect_format, load_dataset, read_dataset
from edgekit.data.split import split_dataset
from edgekit.data.voc import VOC_NAMES, read_voc
from edgekit.data.yolo_txt import read_yolo, write_yolo

__all__ = [
    "COCO80_CATEGORY_IDS",
    "COCO80_NAMES",
    "VOC_NAMES",
    "CheckReport",
    "Dataset",
    "ImageRecord",
    "Problem",
    "Problems",
    "check_dataset",
    "detect_format",
    "load_dataset",
    "read_coco",
    "read_dataset",
    "read_voc",
    "read_yolo",
    "split_dataset",
    "to_coco_json",
    "write_coco_json",
    "write_yolo",
]
