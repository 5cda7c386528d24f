"""Component checkpoints: each carries what rebuilds its model, and loads with weights_only=True.

A Lightning checkpoint of a stage holds, besides `state_dict`, an entry `spinefm`:
    component   maskrcnn | medsa | point_predictor | spine_end
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
COMPONENTS = {
    "maskrcnn": "spinefm.models.maskrcnn:build_maskrcnn",
    "medsa": "spinefm.models.medsa:MedSA",
    "point_predictor": "spinefm.models.point_predictor:PointPredictor",
    "spine_end": "spinefm.models.spine_end:SpineEndClassifier",
}
MODEL_PREFIX = "model."  # LightningModules hold their network as `self.model`


def build_component(component: str, model_config: dict) -> nn.Module:
    if component not in COMPONENTS:
        raise ValueError(f"unknown component {component!r}; expected one of {sorted(COMPONENTS)}")
    module_name, attribute = COMPONENTS[component].split(":")
    return getattr(importlib.import_module(module_name), attribute)(**model_config)


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
        raise ValueError(f"{path} was written by a newer SpineFM-Lightning (format {checkpoint['spinefm']['format_version']})")
    return checkpoint


def load_component(path, expected: str | None = None, model_overrides: dict | None = None) -> tuple[nn.Module, dict]:
    """(model in eval mode on the CPU, its `spinefm` metadata) from a stage checkpoint.

    `model_overrides` replace constructor arguments, e.g. {"checkpoint": new path} when the SAM
    weights a Med-SA checkpoint was built on have moved.
    """
    checkpoint = read_checkpoint(path)
    info = checkpoint["spinefm"]
    if expected is not None and info["component"] != expected:
        raise ValueError(f"{path} holds a {info['component']} checkpoint, but a {expected} one is needed here")
    info["model"] = {**info["model"], **(model_overrides or {})}
    model = build_component(info["component"], info["model"])
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
