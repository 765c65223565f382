"""edgekit.zoo: Keras model definitions (backbones, classifiers, SSDLite, YOLO-tiny, pose).

Build models by name through the registry (``create_model``, ``get_entry``, ``list_models``);
builders never download weights. Importing this package does not import Keras; building does.
"""

from edgekit.zoo.registry import (
    ModelEntry,
    ModelInfo,
    create_model,
    describe_models,
    get_entry,
    list_models,
)

__all__ = ["ModelEntry", "ModelInfo", "create_model", "describe_models", "get_entry", "list_models"]
