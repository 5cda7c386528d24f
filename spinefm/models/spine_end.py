"""Spine-end classifier: what is the patch centred on?

Two class sets (`targets`):
- `ends`: they follow a dataset's `end_levels` ({view: {top: level | null, bottom: level | null}}):
  `background` and `vertebra` always, `top_end` / `bottom_end` only where some view names one;
- `levels`: `background` and one class per level (`level_classes`), so that every position of a
  chain says which vertebra it is, not only whether it is an end.
The pipeline takes these calls as evidence: a direction ends after `patience` doubtful steps in a row
(background, or a call of its end: `end_calls`), and the chain decoder labels the chain (docs/method.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
import torchvision
from torch import nn

from spinefm.data.levels import (
    LEVELS,
    OPTIONAL_LEVELS,
    is_level,
    level_above,
    level_below,
    level_index,
    normalize_level,
)
from spinefm.models.pretrained import state_dict_in, weights_file

log = logging.getLogger(__name__)

BACKGROUND, VERTEBRA, TOP_END, BOTTOM_END = "background", "vertebra", "top_end", "bottom_end"
TARGETS = ("ends", "levels")
ARCHS = ("resnet18", "resnet34", "resnet50", "tiny")
HEAD_PREFIX = "fc."  # the classification layer, in every architecture


def view_end_levels(end_levels: Mapping, view: str | None) -> Mapping:
    """{top, bottom} of a view; a view that is None or not listed uses the `default` entry, if any."""
    if view is not None and view in end_levels:
        return end_levels[view] or {}
    return end_levels.get("default") or {}


def class_names(end_levels: Mapping) -> list[str]:
    """Class names in index order for a dataset's end levels."""
    ends = [e or {} for e in end_levels.values()]
    names = [BACKGROUND, VERTEBRA]
    if any(e.get("top") for e in ends):
        names.append(TOP_END)
    if any(e.get("bottom") for e in ends):
        names.append(BOTTOM_END)
    return names


def level_classes(first_level: str | None, last_level: str | None, end_levels: Mapping) -> list[str]:
    """`background`, then the levels from first_level to last_level, widened by one level past every
    view's end landmark (C7 above T1, S1 below L5: where a walk overshoots, so the classifier names
    it instead of calling it background), top to bottom; optional levels (L6) are left out."""
    if not first_level or not last_level:
        raise ValueError("level targets need the dataset's first_level and last_level")
    first, last = level_index(first_level), level_index(last_level)
    if first > last:
        raise ValueError(f"level range {first_level}..{last_level} runs bottom to top")
    for ends in end_levels.values():
        ends = ends or {}
        if ends.get("top") and (beyond := level_above(ends["top"])):
            first = min(first, level_index(beyond))
        if ends.get("bottom") and (beyond := level_below(ends["bottom"])):
            last = max(last, level_index(beyond))
    return [BACKGROUND, *(lv for lv in LEVELS[first : last + 1] if lv not in OPTIONAL_LEVELS)]


def target_classes(targets: str, end_levels: Mapping, first_level: str | None, last_level: str | None) -> list[str]:
    """The class names, in index order, of a classifier trained with `targets` (`TARGETS`)."""
    if targets not in TARGETS:
        raise ValueError(f"unknown spine-end targets {targets!r}; expected one of {TARGETS}")
    return class_names(end_levels) if targets == "ends" else level_classes(first_level, last_level, end_levels)


def end_calls(classes: list[str], top: str | None, bottom: str | None) -> dict[str, frozenset[str]]:
    """{"top": classes, "bottom": classes} that call a film's end: `top_end` / `bottom_end` where
    the classes have them, else the levels at or past the view's top (bottom) landmark, if any."""
    calls = {}
    for end, landmark, class_name, past in (("top", top, TOP_END, -1), ("bottom", bottom, BOTTOM_END, 1)):
        if class_name in classes:
            calls[end] = frozenset({class_name})
        elif not landmark:
            calls[end] = frozenset()
        else:
            mark = level_index(landmark)
            calls[end] = frozenset(c for c in classes if is_level(c) and (level_index(c) - mark) * past >= 0)
    return calls


def vertebra_class(level: str, view: str | None, end_levels: Mapping) -> str:
    """`top_end` / `bottom_end` for its view's end levels, otherwise `vertebra`."""
    ends = view_end_levels(end_levels, view)
    level = normalize_level(level)
    if ends.get("top") and level == normalize_level(ends["top"]):
        return TOP_END
    if ends.get("bottom") and level == normalize_level(ends["bottom"]):
        return BOTTOM_END
    return VERTEBRA


def sample_class(level: str | None, view: str | None, classes: list[str], end_levels: Mapping) -> str | None:
    """The class of a patch centred on `level` (None: background): its end class or `vertebra`
    (end targets), else the level itself; None where the classes have no place for it (L6)."""
    if level is None:
        return BACKGROUND
    if VERTEBRA in classes:
        return vertebra_class(level, view, end_levels)
    level = normalize_level(level)
    return level if level in classes else None


def levels_between_ends(levels: list[str], view: str | None, end_levels: Mapping) -> int | None:
    """How many annotated levels run from the view's top end to its bottom end (both included; L6
    counts where annotated); None unless the view has both ends and the film annotates both."""
    ends = view_end_levels(end_levels, view)
    if not ends.get("top") or not ends.get("bottom"):
        return None
    names = [normalize_level(level) for level in levels]
    top, bottom = normalize_level(ends["top"]), normalize_level(ends["bottom"])
    if top not in names or bottom not in names:
        return None
    return names.index(bottom) - names.index(top) + 1


class SpineEndClassifier(nn.Module):
    """Patch classifier on grey patches.

    arch: torchvision `resnet18` | `resnet34` | `resnet50` (weights=None) or `tiny` (a three-layer
    CNN for tests). The first convolution takes `in_channels` directly (grey: 1). An
    `init_checkpoint` (a state dict in torchvision's layout, or a spine_end checkpoint from train.py)
    whose first convolution has 3 input channels is folded into 1 by summing over them, which is
    the same as feeding the grey image three times. Its classification layer is skipped when the
    number of classes differs. Inputs are standardised with `mean` / `std` (ImageNet's, averaged
    over RGB), so an ImageNet initialisation sees the range it was trained on.
    """

    def __init__(
        self,
        arch: str = "resnet50",
        num_classes: int = 4,
        in_channels: int = 1,
        init_checkpoint: str | None = None,
        mean: float = 0.449,
        std: float = 0.226,
    ):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown spine-end arch {arch!r}; expected one of {ARCHS}")
        self.mean, self.std = mean, std
        self.net = _tiny_cnn(in_channels, num_classes) if arch == "tiny" else _resnet(arch, in_channels, num_classes)
        if init_checkpoint:
            self.load_init_checkpoint(weights_file(init_checkpoint))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, C, S, S) float in [0, 1] -> logits (B, num_classes)."""
        return self.net((images - self.mean) / self.std)

    def load_init_checkpoint(self, path: str) -> None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"spine-end init_checkpoint {path} not found; fix model.init_checkpoint or set it to null"
            )
        state = _network_state(torch.load(path, map_location="cpu", weights_only=True))
        own = self.net.state_dict()
        first_conv = "conv1.weight"
        if (
            first_conv in state
            and first_conv in own
            and state[first_conv].shape[1] == 3
            and own[first_conv].shape[1] == 1
        ):
            state[first_conv] = state[first_conv].sum(dim=1, keepdim=True)
        head = [k for k in own if k.startswith(HEAD_PREFIX) and k in state and state[k].shape != own[k].shape]
        if head:
            log.info(
                "init_checkpoint %s: classification layer has another number of classes; left at random init", path
            )
            state = {k: v for k, v in state.items() if k not in head}
        missing = [k for k in own if k not in state and k not in head]
        unexpected = [k for k in state if k not in own]
        wrong_shape = [k for k in state if k in own and state[k].shape != own[k].shape]
        if missing or unexpected or wrong_shape:
            raise ValueError(
                f"init_checkpoint {path} does not fit a {type(self).__name__} built from this config: "
                f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {wrong_shape[:5]}; "
                "check model.arch and model.in_channels"
            )
        self.net.load_state_dict(state, strict=False)


def _network_state(loaded) -> dict:
    """The network's state dict from a plain state dict or a spine_end checkpoint (the module's `net`)."""
    state = state_dict_in(loaded)
    if state and all(k.startswith("net.") for k in state):
        state = {k[len("net.") :]: v for k, v in state.items()}
    return dict(state)


def _resnet(arch: str, in_channels: int, num_classes: int) -> nn.Module:
    net = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return net


def _tiny_cnn(in_channels: int, num_classes: int) -> nn.Module:
    """Three strided conv blocks; the head sees a 4 x 4 map, so where things lie in the patch counts."""
    layers, width = [], in_channels
    for out in (8, 16, 32):
        layers += [
            nn.Conv2d(width, out, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU(inplace=True),
        ]
        width = out
    body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten())
    net = nn.Sequential()
    net.add_module("body", body)
    net.add_module("fc", nn.Linear(width * 16, num_classes))
    return net
