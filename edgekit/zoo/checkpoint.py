"""A Keras checkpoint with its spec as a model of its own: train it, thin it, resize it.

``edgekit train --model ckpt.keras`` and ``edgekit compress --student ckpt.keras`` accept a
checkpoint (e.g. a teacher brought in by ``edgekit import``) wherever a zoo name goes.
:func:`model_entry` returns the zoo entry for a name and a :class:`CheckpointEntry` for a
``.keras`` file; both build a model (``create``) and describe it (``spec``) the same way:

- ``create(num_classes, input_size, labels=...)`` loads the weights, keeps the classes named in
  ``labels`` (an SSD's class predictors are sliced, background column kept), and rebuilds the
  graph at ``input_size`` (convolutions do not care; ``ssd_raw`` anchors are regenerated from
  the generator arguments in the spec);
- a pose checkpoint's ``create(..., decode=False)`` gives the raw heads that training fits.

A checkpoint's spec is its ``<name>.spec.json`` (what edgekit writes next to every ``.keras``,
:func:`save_checkpoint_spec`). The one rule for a checkpoint's model and spec, used by ``edgekit
export``, ``eval``, ``explain`` and ``compress``: :func:`load_checkpoint_model` and
:func:`checkpoint_model_spec` (the ``.spec.json`` next to it, else the zoo entry of its
architecture).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.artifact import atomic_write_bytes
from edgekit.core.types import ModelSpec
from edgekit.errors import ModelLoadError, UsageError

__all__ = [
    "CheckpointEntry",
    "checkpoint_model_spec",
    "checkpoint_spec",
    "load_checkpoint_model",
    "model_entry",
    "raw_heads",
    "resize_model",
    "save_checkpoint_spec",
    "select_ssd_classes",
    "spec_path",
    "zoo_entry_of",
]


def spec_path(path: str | Path) -> Path:
    """Where a ``.keras`` checkpoint's spec lies: ``<name>.spec.json`` next to it."""
    return Path(path).with_suffix(".spec.json")


def checkpoint_spec(path: str | Path) -> ModelSpec | None:
    """The spec written next to a ``.keras`` checkpoint, or None when there is none."""
    side = spec_path(path)
    if not side.is_file():
        return None
    try:
        return ModelSpec.from_json(side.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelLoadError(f"{side}: {exc}") from None


def save_checkpoint_spec(path: str | Path, spec: ModelSpec) -> Path:
    """Write ``spec`` next to the checkpoint ``path`` (atomically), where
    :func:`checkpoint_spec` finds it."""
    return atomic_write_bytes(spec_path(path), spec.to_json().encode("utf-8"))


def load_checkpoint_model(path: str | Path) -> Any:
    """The Keras model of a ``.keras`` checkpoint (``ModelLoadError`` naming the file when Keras
    cannot load it)."""
    from edgekit.zoo.saving import load_keras_model

    try:
        return load_keras_model(path)
    except Exception as exc:
        raise ModelLoadError(f"{path}: cannot load Keras model ({exc})") from None


def zoo_entry_of(model_name: str, arch: str | None = None) -> Any:
    """The zoo entry named ``arch``, else the one whose name is the longest prefix of
    ``model_name`` (a zoo model is called ``<zoo name>`` or ``<zoo name>_<suffix>``)."""
    from edgekit.zoo.registry import get_entry, list_models

    if arch:
        return get_entry(arch)
    names = sorted((e.name for e in list_models()), key=len, reverse=True)
    hit = next((n for n in names if model_name == n or model_name.startswith(n + "_")), None)
    if hit is None:
        raise UsageError(
            f"cannot tell which zoo model {model_name!r} is",
            hint="write its .spec.json next to it, or pass --arch NAME where the command takes "
            "one (see edgekit models list)",
        )
    return get_entry(hit)


def checkpoint_model_spec(
    path: str | Path,
    model: Any,
    *,
    arch: str | None = None,
    labels: Sequence[str] = (),
    dataset_names: Sequence[str] = (),
) -> ModelSpec:
    """The spec of ``model``, loaded from the checkpoint ``path``: the one edgekit wrote next to
    it (:func:`checkpoint_spec`, with ``labels`` when given) unless ``arch`` names its zoo
    architecture, else the spec of its zoo entry (:func:`zoo_entry_of`) with ``labels``, or the
    dataset's class names (``dataset_names``) when their number matches the model's classes."""
    names = tuple(labels)
    saved = None if arch else checkpoint_spec(path)
    if saved is not None:  # what edgekit train/import wrote next to the checkpoint
        return dataclasses.replace(saved, labels=names or saved.labels)
    entry = zoo_entry_of(model.name, arch)
    if not names and dataset_names:
        try:
            return entry.spec(model, tuple(dataset_names))
        except UsageError:
            return entry.spec(model)
    return entry.spec(model, names)


def model_entry(name: str) -> Any:
    """The zoo entry called ``name``, or a :class:`CheckpointEntry` for a ``.keras`` file."""
    if name.endswith(".keras") or Path(name).is_file():
        return CheckpointEntry.from_path(name)
    from edgekit.zoo.registry import get_entry

    return get_entry(name)


def resize_model(model: Any, input_size: tuple[int, int]) -> Any:
    """The same network at another input size (new graph, same weights)."""
    import keras

    h, w = (int(v) for v in input_size)
    if tuple(int(v) for v in model.input_shape[1:3]) == (h, w):
        return model
    channels = int(model.input_shape[-1])
    image = keras.Input((h, w, channels), name=model.inputs[0].name.split(":")[0] or "image")
    inputs = [image] if isinstance(model.input, (list, tuple)) else image

    def clone(layer: Any) -> Any:  # a flattened feature map's length follows the input size
        cfg = layer.get_config()
        if isinstance(layer, keras.layers.Reshape) and len(layer.input.shape) == 4:
            cfg["target_shape"] = (-1, *tuple(cfg["target_shape"])[1:])
        return type(layer).from_config(cfg)

    try:
        new = keras.models.clone_model(model, input_tensors=inputs, clone_function=clone)
    except Exception as exc:
        raise UsageError(f"{model.name}: cannot be rebuilt at {h}x{w} ({exc})") from None
    new.set_weights(model.get_weights())
    return new


def raw_heads(model: Any) -> Any:
    """A pose model without its ``MoveNetDecode`` layer (the four heads), sharing weights."""
    import keras

    from edgekit.zoo.pose import MoveNetDecode

    decode = [layer for layer in model.layers if isinstance(layer, MoveNetDecode)]
    if not decode:
        return model
    heads = list(decode[0]._inbound_nodes[0].input_tensors)
    return keras.Model(model.inputs[0], heads, name=f"{model.name}_raw")


def _class_branches(model: Any) -> tuple[list[Any], list[Any]]:
    """The convs whose outputs are concatenated into ``class_logits`` and the layers (reshapes)
    between them and the concatenation."""
    concat = model.outputs[1]._keras_history.operation
    convs, between = [], []
    for t in concat._inbound_nodes[0].input_tensors:
        layer = t._keras_history.operation
        while not hasattr(layer, "kernel"):
            between.append(layer)
            layer = layer._inbound_nodes[0].input_tensors[0]._keras_history.operation
        convs.append(layer)
    return convs, between


def select_ssd_classes(model: Any, keep: Sequence[int]) -> Any:
    """An ``ssd_raw`` model that predicts only classes ``keep`` (0-based, no background), in
    that order: each class predictor's output channels are sliced (background column kept)."""
    import keras

    num_cols = int(model.outputs[1].shape[-1])
    keep = [int(k) for k in keep]
    if not keep or min(keep) < 0 or max(keep) >= num_cols - 1:
        raise UsageError(f"{model.name}: classes {keep} are not among its {num_cols - 1}")
    cols = [0] + [k + 1 for k in keep]
    convs, between = _class_branches(model)
    picks = {}
    for conv in convs:
        n = int(conv.filters) // num_cols
        picks[conv.name] = np.array([a * num_cols + c for a in range(n) for c in cols])
    reshapes = {layer.name for layer in between if isinstance(layer, keras.layers.Reshape)}

    def clone(layer: Any) -> Any:
        cfg = layer.get_config()
        if layer.name in picks:
            cfg["filters"] = len(picks[layer.name])
        elif layer.name in reshapes:
            shape = tuple(cfg["target_shape"])
            cfg["target_shape"] = (-1, *shape[1:-1], len(cols))
        return type(layer).from_config(cfg)

    new = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        w = layer.get_weights()
        if not w:
            continue
        if layer.name in picks:
            idx = picks[layer.name]
            w = [w[0][..., idx], w[1][idx]]
        new.get_layer(layer.name).set_weights(w)
    return new


@dataclass(frozen=True)
class CheckpointEntry:
    """A ``.keras`` checkpoint behind the zoo entry interface (module docstring)."""

    path: Path
    base: ModelSpec

    @classmethod
    def from_path(cls, path: str | Path) -> CheckpointEntry:
        p = Path(path)
        if not p.is_file():
            raise UsageError(f"{p}: no such checkpoint")
        spec = checkpoint_spec(p)
        if spec is None:
            raise UsageError(
                f"{p}: no {spec_path(p).name} next to it "
                "(edgekit train and edgekit import write one)"
            )
        return cls(p, spec)

    # the zoo entry's fields that training reads
    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def task(self) -> str:
        return self.base.task

    @property
    def decoder(self) -> str:
        return self.base.decoder

    @property
    def default_input_size(self) -> tuple[int, int]:
        return self.base.input_size

    @property
    def backbone(self) -> str:
        return ""

    def create(
        self,
        num_classes: int | None = None,
        input_size: int | Sequence[int] | None = None,
        width: float | None = None,
        *,
        labels: Sequence[str] = (),
        decode: bool = True,
        **kwargs: Any,
    ) -> Any:
        """The checkpoint's model with ``labels``' classes, at ``input_size``; ``width`` and
        builder options do not apply to a checkpoint (``UsageError`` when given)."""
        if width not in (None, 1.0) or kwargs:
            raise UsageError(
                f"{self.path}: a checkpoint is built as it was saved; width/builder options "
                f"({', '.join(kwargs) or 'width'}) apply to zoo models only"
            )
        model = load_checkpoint_model(self.path)
        if self.task == "detect" and self.decoder == "ssd_raw":
            keep = self._class_indices(labels, num_classes)
            if keep is not None:
                model = select_ssd_classes(model, keep)
        elif self.task != "pose" and num_classes not in (None, self._num_classes()):
            raise UsageError(
                f"{self.path}: {self._num_classes()} classes; changing them is supported for "
                "SSD checkpoints only"
            )
        if self.task == "pose" and not decode:
            model = raw_heads(model)
        if input_size is not None:
            size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
            model = resize_model(model, (int(size[0]), int(size[1])))
        return model

    def _num_classes(self) -> int:
        n = self.base.decoder_params.get("num_classes")
        return int(n) if n is not None else len(self.base.labels)

    def _class_indices(self, labels: Sequence[str], num_classes: int | None) -> list[int] | None:
        """Which of the checkpoint's classes to keep, by name (None: all of them)."""
        have, labels = list(self.base.labels), list(labels)
        if not labels or labels == have:
            if num_classes not in (None, self._num_classes()):
                raise UsageError(
                    f"{self.path}: has {self._num_classes()} classes, {num_classes} asked; "
                    "name the classes to keep (labels)"
                )
            return None
        missing = [lab for lab in labels if lab not in have]
        if missing:
            shown = ", ".join(have[:8]) + (", ..." if len(have) > 8 else "")
            raise UsageError(
                f"{self.path}: class(es) {', '.join(missing)} are not among its labels ({shown})"
            )
        return [have.index(lab) for lab in labels]

    def spec(self, model_or_input_size: Any = None, labels: Sequence[str] = ()) -> ModelSpec:
        """The spec at an input size (or of a model built from this entry) with ``labels``."""
        if model_or_input_size is None:
            size = self.base.input_size
            model = None
        elif isinstance(model_or_input_size, (int, tuple, list)):
            v = model_or_input_size
            size = (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))
            model = None
        else:
            model = model_or_input_size
            size = (int(model.input_shape[1]), int(model.input_shape[2]))
        labels = tuple(labels) or self.base.labels
        params = dict(self.base.decoder_params)
        if self.decoder == "ssd_raw":
            params.update(self._ssd_params(size, len(labels), model))
        return dataclasses.replace(self.base, input_size=size, labels=labels, decoder_params=params)

    def _ssd_params(self, size: tuple[int, int], num_classes: int, model: Any) -> dict[str, Any]:
        from edgekit.core.anchors import ssd_anchors, ssd_feature_sizes

        gen = self.base.decoder_params.get("anchors")
        if not isinstance(gen, dict):
            if size != self.base.input_size:
                raise UsageError(
                    f"{self.path}: its anchors are an explicit list (no generator matched), "
                    "so it cannot change input size"
                )
            return {"num_classes": num_classes}
        stride = int(self.base.decoder_params.get("feature_stride", 16))
        kwargs = {
            **gen,
            "input_size": list(size),
            "feature_sizes": [
                list(s) for s in ssd_feature_sizes(size, len(gen["feature_sizes"]), stride)
            ],
        }
        n = int(ssd_anchors(**kwargs).shape[0])
        if model is not None and int(model.outputs[0].shape[1]) != n:
            raise UsageError(
                f"{self.path}: at {size[0]}x{size[1]} the model predicts "
                f"{int(model.outputs[0].shape[1])} boxes but the anchor generator gives {n}"
            )
        return {"anchors": kwargs, "num_anchors": n, "num_classes": num_classes}
