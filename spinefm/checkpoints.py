"""Component checkpoints: each carries what rebuilds its model, and loads with weights_only=True.

Older checkpoints lack role, adapter and builder: those follow from their component (`LEGACY`).

A Lightning checkpoint of a stage holds, besides `state_dict`, an entry `spinefm`:
    component   the stage that trained it: maskrcnn | medsa | point_predictor | spine_end | ...
    role        detector | segmenter | predictor | classifier (what the pipeline uses it as)
    adapter     the pipeline adapter that serves the role (`spinefm.pipeline.roles`)
    builder     "module:callable" building the model from `model`
    model       the model's constructor arguments (plain values)
    inference   what the pipeline needs to use it (patch sizes, classes, thresholds ...)
    dataset     name and level range it was trained on
    trainable_only   true when state_dict holds only the trained parameters (Med-SA)
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

FORMAT_VERSION = 1
IDENTITY = ("role", "adapter", "builder")
# component -> (role, adapter, builder) of the checkpoints written before they carried them
LEGACY = {
    "maskrcnn": ("detector", "maskrcnn", "spinefm.models.maskrcnn:build_maskrcnn"),
    "medsa": ("segmenter", "medsa", "spinefm.models.medsa:MedSA"),
    "point_predictor": ("predictor", "point_predictor", "spinefm.models.point_predictor:PointPredictor"),
    "spine_end": ("classifier", "spine_end", "spinefm.models.spine_end:SpineEndClassifier"),
}
MODEL_PREFIX = "model."  # LightningModules hold their network as `self.model`


def import_object(path: str):
    """The object a "module:attribute" path names."""
    module_name, _, attribute = path.partition(":")
    if not attribute:
        raise ValueError(f"{path!r} is not a 'module:attribute' path")
    return getattr(importlib.import_module(module_name), attribute)


def build_model(builder: str, model_config: dict) -> nn.Module:
    return import_object(builder)(**model_config)


def with_identity(info: dict) -> dict:
    """A checkpoint's `spinefm` entry (or a stage's) with role, adapter and builder, those it lacks
    taken from its component's LEGACY entry."""
    if all(key in info for key in IDENTITY):
        return info
    if info.get("component") not in LEGACY:
        raise ValueError(f"a {info.get('component')!r} checkpoint must name its role, adapter and builder")
    return {**dict(zip(IDENTITY, LEGACY[info["component"]])), **info}


def read_checkpoint(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found; train the component first or fix the path")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or "spinefm" not in checkpoint:
        raise ValueError(
            f"{path} is not a SpineFM-Lightning component checkpoint (no 'spinefm' entry); "
            "use a checkpoint written by train.py (best-*.ckpt or last.ckpt)"
        )
    if checkpoint["spinefm"].get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{path} was written by a newer SpineFM-Lightning (format {checkpoint['spinefm']['format_version']})"
        )
    return checkpoint


def load_component(path, model_overrides: dict | None = None) -> tuple[nn.Module, dict]:
    """(model in eval mode on the CPU, its `spinefm` metadata with its identity: `with_identity`) from a
    stage checkpoint.

    `model_overrides` replace constructor arguments, e.g. {"checkpoint": new path} when the SAM
    weights a Med-SA checkpoint was built on have moved.
    """
    checkpoint = read_checkpoint(path)
    info = with_identity(checkpoint["spinefm"])
    info["model"] = {**info["model"], **(model_overrides or {})}
    model = build_model(info["builder"], info["model"])
    state = {k[len(MODEL_PREFIX) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(MODEL_PREFIX)}
    if info.get("trainable_only"):
        model.load_trainable_state_dict(state)
    else:
        result = model.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(
                f"{path} does not fit a {info['component']} built from its own config: "
                f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}; "
                "was the file edited, or written by another version?"
            )
    return model.eval(), info
