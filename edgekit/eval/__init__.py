"""Evaluation: run a model (the deployed ``.tflite``, or a Keras checkpoint) over a dataset and
score it with standard metrics: COCO box mAP and OKS AP through faster-coco-eval, PCK, top-k.

``evaluate_model(EvalConfig(model=..., data=...))`` is what ``edgekit eval`` calls.
"""

from edgekit.eval.classify import ClassifyMetrics, evaluate_classes, topk_accuracy
from edgekit.eval.detection import COCO90_TO_80, ClassMap, DetectionMetrics, evaluate_detections
from edgekit.eval.pose import PoseMetrics, evaluate_poses, pck_per_instance
from edgekit.eval.run import (
    EvalConfig,
    EvalResult,
    evaluate_model,
    load_model,
)

__all__ = [
    "COCO90_TO_80",
    "ClassMap",
    "ClassifyMetrics",
    "DetectionMetrics",
    "EvalConfig",
    "EvalResult",
    "PoseMetrics",
    "evaluate_classes",
    "evaluate_detections",
    "evaluate_model",
    "evaluate_poses",
    "load_model",
    "pck_per_instance",
    "topk_accuracy",
]
