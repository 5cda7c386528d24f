"""Spine-end classifier: what is the patch centred on? Its classes are in `spinefm.data.classes`."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torchvision
from torch import nn

from spinefm.models.pretrained import state_dict_in, weights_file

log = logging.getLogger(__name__)

ARCHS = ("resnet18", "resnet34", "resnet50", "tiny")
HEAD_PREFIX = "fc."  # the classification layer, in every architecture


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
