"""The original SpineFM weight files' key layouts, mapped onto this framework's models.

Every function takes the original state dict and returns the state dict of the model that the
converted checkpoint rebuilds; tensors are moved, never changed, except where noted.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F

# Medical-SAM-Adapter's encoder block and decoder block names -> segment-anything's with our adapters
# (`spinefm.models.medsa.inject`). The depth adapter only acts on 3-D volumes: it is left out.
_MEDSA_RENAMES = (
    (r"(blocks\.\d+)\.attn\.rel_([hw])$", r"\1.attn.attn.rel_pos_\2"),
    (r"(blocks\.\d+)\.attn\.(qkv|proj)\.", r"\1.attn.attn.\2."),
    (r"(blocks\.\d+)\.mlp\.(lin[12])\.", r"\1.mlp.mlp.\2."),
    (r"(blocks\.\d+)\.Space_Adapter\.D_fc1\.", r"\1.attn.adapter.down."),
    (r"(blocks\.\d+)\.Space_Adapter\.D_fc2\.", r"\1.attn.adapter.up."),
    (r"(blocks\.\d+)\.MLP_Adapter\.D_fc1\.", r"\1.mlp.adapter.down."),
    (r"(blocks\.\d+)\.MLP_Adapter\.D_fc2\.", r"\1.mlp.adapter.up."),
    (r"(transformer\.layers\.\d+)\.mlp\.layers\.0\.0\.", r"\1.mlp.lin1."),
    (r"(transformer\.layers\.\d+)\.mlp\.fc\.", r"\1.mlp.lin2."),
)
_MEDSA_DROPPED = re.compile(r"\.Depth_Adapter\.")
POS_EMBED = "image_encoder.pos_embed"


def without_wrapper_prefix(state: dict) -> dict:
    """A state dict saved from a DataParallel / DDP wrapper has every key under `module.`."""
    if state and all(key.startswith("module.") for key in state):
        return {key.removeprefix("module."): value for key, value in state.items()}
    return dict(state)


def medsa_state(original: dict, pos_embed_shape: tuple[int, ...]) -> dict:
    """A Medical-SAM-Adapter model's state dict in `MedSA`'s layout.

    The original encoder keeps a position embedding for a 1024 px input and resizes it (bicubic) to
    the token grid on every forward; for a grid of another size it is resized once here, the same way.
    """
    state = {}
    for key, value in without_wrapper_prefix(original).items():
        if _MEDSA_DROPPED.search(key):
            continue
        for pattern, replacement in _MEDSA_RENAMES:
            key = re.sub(pattern, replacement, key)
        state[key] = value
    position = state.get(POS_EMBED)
    if position is not None and tuple(position.shape) != tuple(pos_embed_shape):
        grid = tuple(pos_embed_shape[1:3])
        resized = F.interpolate(position.permute(0, 3, 1, 2), size=grid, mode="bicubic", align_corners=False)
        state[POS_EMBED] = resized.permute(0, 2, 3, 1).contiguous()
    return state


_POINT_PREDICTOR_RENAMES = {"fc1.": "mlp.0.", "fc2.": "mlp.2."}


def point_predictor_state(original: dict) -> dict:
    """SpineFM's `fc1` / `fc2` MLP as `PointPredictor`'s `mlp` (Linear, ReLU, Linear)."""
    return {_renamed(key, _POINT_PREDICTOR_RENAMES): value for key, value in without_wrapper_prefix(original).items()}


def point_predictor_original_key(key: str) -> str:
    return _renamed(key, {ours: theirs for theirs, ours in _POINT_PREDICTOR_RENAMES.items()})


def _renamed(key: str, prefixes: dict) -> str:
    prefix = next((p for p in prefixes if key.startswith(p)), None)
    return prefixes[prefix] + key[len(prefix) :] if prefix else key


def classifier_state(original: dict) -> dict:
    """A torchvision ResNet's state dict as `SpineEndClassifier`'s on grey patches: the first
    convolution's three input channels are summed into one, which gives the same output on a grey
    film given as three equal channels (as the original reads it)."""
    state = {f"net.{key}": value for key, value in without_wrapper_prefix(original).items()}
    conv = state.get("net.conv1.weight")
    if conv is not None and conv.dim() == 4 and conv.shape[1] == 3:
        state["net.conv1.weight"] = conv.sum(dim=1, keepdim=True)
    return state


def classifier_original_key(key: str) -> str:
    return key.removeprefix("net.")


def maskrcnn_state(original: dict) -> dict:
    """torchvision's Mask R-CNN: the layout is already the framework's."""
    return without_wrapper_prefix(original)


def changed_keys(state: dict, reference: dict) -> list[str]:
    """Keys of `reference` whose tensor in `state` differs from it."""
    return [key for key, value in reference.items() if key in state and not torch.equal(state[key], value)]
