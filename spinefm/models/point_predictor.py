"""Next-centroid predictor: from the last three centroids, where is the next vertebra?"""

from __future__ import annotations

import torch
from torch import nn

from spinefm.models.pretrained import init_weights

PARAMETERISATIONS = ("relative", "absolute")


class PointPredictor(nn.Module):
    """MLP on three centroids (furthest, middle, nearest), in pixels, to the next centroid.

    `relative` (default): coordinates relative to the nearest centroid, in units of the window's
    mean centroid spacing, so the prediction does not depend on where the spine lies in the image
    or on its resolution. `absolute`: SpineFM's original x / W, y / H.
    `init_checkpoint`: a point_predictor checkpoint (or state dict) whose weights start training.
    `residual`: the MLP corrects a constant-velocity step (next = nearest + last step) instead of
    predicting the point from scratch; its last layer starts at zero, so training starts there.
    """

    def __init__(
        self,
        parameterisation: str = "relative",
        hidden: tuple[int, ...] = (50,),
        residual: bool = True,
        init_checkpoint: str | None = None,
    ):
        super().__init__()
        if parameterisation not in PARAMETERISATIONS:
            raise ValueError(f"parameterisation must be one of {PARAMETERISATIONS}, not {parameterisation!r}")
        self.parameterisation = parameterisation
        self.residual = residual
        layers, width = [], 6
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, 2))
        if residual:
            nn.init.zeros_(layers[-1].weight)
            nn.init.zeros_(layers[-1].bias)
        self.mlp = nn.Sequential(*layers)
        if init_checkpoint:
            self.load_state_dict(init_weights(init_checkpoint, self.state_dict()))

    def frame(self, window: torch.Tensor, image_size: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(origin (B, 2), scale (B, 1 or 2)): model coordinates are (p - origin) / scale.

        window: (B, 3, 2) pixel (x, y); image_size: (B, 2) as (width, height).
        """
        if self.parameterisation == "absolute":
            return torch.zeros_like(window[:, 0]), image_size.to(window.dtype)
        spacing = (window[:, 1:] - window[:, :-1]).norm(dim=-1).mean(dim=1, keepdim=True)
        return window[:, 2], spacing.clamp_min(1e-6)

    def forward_normalised(self, window: torch.Tensor) -> torch.Tensor:
        """Prediction from a window already in model coordinates (B, 3, 2) -> (B, 2)."""
        prediction = self.mlp(window.flatten(1))
        if self.residual:
            prediction = prediction + 2 * window[:, 2] - window[:, 1]
        return prediction

    def forward(self, window: torch.Tensor, image_size: torch.Tensor) -> torch.Tensor:
        """Next centroid (B, 2) in pixels."""
        origin, scale = self.frame(window, image_size)
        return self.forward_normalised(normalise(window, origin, scale)) * scale + origin


def normalise(points: torch.Tensor, origin: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Pixels to model coordinates; `points` is (B, 2) or (B, K, 2)."""
    if points.dim() == 3:
        origin, scale = origin.unsqueeze(1), scale.unsqueeze(1)
    return (points - origin) / scale
