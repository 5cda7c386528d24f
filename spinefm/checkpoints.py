"""Component checkpoints: each carries what rebuilds its model, and loads with weights_only=True.

Checkpoints written before they named their role, adapter and builder get those from their
component (`LEGACY`); every stage module names all three now.

A Lightning checkpoint of a stage holds, besides `state_dict`, an entry `spinefm`:
    component   the stage that trained it: maskrcnn | medsa | point_predictor | spine_end | ...
    role        detector | segmenter | predictor | classifier (what the pipeline uses it as)
    adapter     the pipeline adapter that serves the role (`spinefm.pipeline.components.roles`)
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

from spinefm.errors import UserError, reason
from spinefm.state_dicts import key_mismatch

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
    """A component checkpoint's dict; a file that is missing, unreadable (cut short, not PyTorch's), not
    a SpineFM-Lightning checkpoint or of a newer format raises an error naming it (`UserError`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found; train the component first or fix the path")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds (RuntimeError, EOFError, OSError, UnpicklingError ...)
        raise UserError(
            f"checkpoint {path} cannot be read ({reason(error, first_sentence=True)}); expected a whole checkpoint "
            "written by train.py (best-*.ckpt or last.ckpt): copy it again if it was cut short, or fix the path"
        ) from error
    info = checkpoint.get("spinefm") if isinstance(checkpoint, dict) else None
    version = info.get("format_version", 0) if isinstance(info, dict) else 0
    if not isinstance(info, dict):
        problem = "no 'spinefm' entry"
    elif not isinstance(checkpoint.get("state_dict"), dict):
        problem = "no 'state_dict' entry"
    elif not isinstance(version, int):
        problem = f"its format_version {version!r} is not a number"
    else:
        problem = None
    if problem:
        raise UserError(
            f"{path} is not a SpineFM-Lightning component checkpoint ({problem}); "
            "use a checkpoint written by train.py (best-*.ckpt or last.ckpt)"
        )
    if version > FORMAT_VERSION:
        raise UserError(
            f"{path} was written by a newer SpineFM-Lightning (checkpoint format {version!r}; this one reads "
            f"formats up to {FORMAT_VERSION}); update SpineFM-Lightning (git pull, then make env), or use a "
            "checkpoint this version wrote"
        )
    return checkpoint


def load_component(path, model_overrides: dict | None = None) -> tuple[nn.Module, dict]:
    """(model in eval mode on the CPU, its `spinefm` metadata with its identity: `with_identity`) from a
    stage checkpoint. A checkpoint whose model cannot be built, or whose weights do not fit the model
    its own config builds, raises an error naming it (`UserError`).

    `model_overrides` replace constructor arguments, e.g. {"checkpoint": new path} when the SAM
    weights a Med-SA checkpoint was built on have moved.
    """
    checkpoint = read_checkpoint(path)
    written_by_train = "use a checkpoint written by train.py (best-*.ckpt or last.ckpt)"
    try:
        info = with_identity(checkpoint["spinefm"])
    except ValueError as error:
        raise UserError(f"{path}: {error}; {written_by_train}") from error
    if not isinstance(info.get("model"), dict):
        raise UserError(f"{path} holds no model config (its 'spinefm' entry has no 'model'); {written_by_train}")
    info["model"] = {**info["model"], **(model_overrides or {})}
    try:
        model = build_model(info["builder"], info["model"])
    except (ImportError, AttributeError, TypeError, ValueError, OSError) as error:
        raise UserError(
            f"{path}: its {info.get('component')} model cannot be built by {info['builder']} from the config it "
            f"carries ({reason(error)}); fix what that names (model_overrides replace the config's arguments), "
            "or use a checkpoint this version wrote"
        ) from error
    state = {k[len(MODEL_PREFIX) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(MODEL_PREFIX)}
    trainable_only = bool(info.get("trainable_only"))
    mismatch = key_mismatch(model.trainable_state_dict() if trainable_only else model.state_dict(), state)
    does_not_fit = f"{path} does not fit a {info.get('component')} built from its own config"
    again = "was the file edited, or written by another version? Use a checkpoint this version wrote"
    if mismatch:
        raise UserError(f"{does_not_fit}: {mismatch}; {again}")
    if trainable_only:
        try:
            model.load_trainable_state_dict(state)
        except ValueError as error:
            raise UserError(f"{does_not_fit} ({reason(error, first_sentence=True)}); {again}") from error
    else:
        model.load_state_dict(state, strict=False)  # key_mismatch found every key
    return model.eval(), info
