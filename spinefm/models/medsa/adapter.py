"""The Med-SA bottleneck adapter."""

import torch
from torch import nn


class AdapterLayer(nn.Module):
    """Linear(D, D * ratio) -> GELU -> Linear(D * ratio, D), acting on the last dimension.

    The up-projection starts at zero, so a freshly injected adapter outputs exactly 0 and the
    adapted encoder starts exactly at the base encoder.
    """

    def __init__(self, dim: int, ratio: float = 0.25) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        if hidden < 1:
            raise ValueError(f"adapter ratio {ratio} leaves no hidden units for dim {dim}")
        self.down = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.up = nn.Linear(hidden, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x)))
