"""Level map: which level lies at each height of a whole film, read with the whole film in view.

A film is resized to a fixed (height, width); a small CNN computes features at strides 8, 16 and
32; each is pooled across the film's width with learned weights (where along a row the spine lies)
and brought to the stride-8 rows; a bidirectional GRU runs down and up the rows, so each row's call
can count from the pelvis, the ribs and the neck; a linear layer gives per-row level logits. The
class names (`above`, the levels, `below`) come from `spinefm.data.level_rows`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

ROW_STRIDE = 8  # input pixels per output row


def _block(inputs: int, outputs: int) -> nn.Sequential:
    """Two 3x3 convolutions, the first with stride 2."""
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, 2, 1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
        nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


class LevelMapNet(nn.Module):
    """(B, 1, H, W) films in [0, 1] -> (B, H / ROW_STRIDE, num_classes) logits; H and W multiples of 32.
    channels: widths at strides 2, 4, 8, 16 and 32; hidden: the GRU's width each way."""

    def __init__(self, num_classes: int, channels: Sequence[int] = (24, 32, 64, 96, 128), hidden: int = 64):
        super().__init__()
        if len(channels) != 5:
            raise ValueError(f"level_map channels: five widths (strides 2 to 32), not {list(channels)}")
        widths = [1, *channels]
        self.stages = nn.ModuleList(_block(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.pools = nn.ModuleList(nn.Conv2d(c, 1, 1) for c in channels[2:])  # strides 8, 16, 32
        self.rows = nn.GRU(sum(channels[2:]), hidden, num_layers=2, batch_first=True, bidirectional=True, dropout=0.1)
        self.head = nn.Linear(2 * hidden, num_classes)

    def forward(self, films: torch.Tensor) -> torch.Tensor:
        features, x = [], films
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        rows = features[2].shape[2]
        pooled = []
        for feature, pool in zip(features[2:], self.pools):
            weights = pool(feature).softmax(dim=-1)  # across the width
            pooled.append(F.interpolate((feature * weights).sum(dim=-1), size=rows, mode="linear"))
        sequence = torch.cat(pooled, dim=1).transpose(1, 2)  # (B, rows, C)
        return self.head(self.rows(sequence)[0])
