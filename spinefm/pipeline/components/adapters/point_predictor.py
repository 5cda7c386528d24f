"""The predictor role: the next centroid from the last three."""

from __future__ import annotations

import numpy as np
import torch

from spinefm.pipeline.components.adapters.base import Adapter, full_precision
from spinefm.pipeline.components.roles import register_adapter


@register_adapter("point_predictor")
class PointPredictorAdapter(Adapter):
    """The point predictor on (N, 3, 2) pixel windows: `PointPredictor.forward` works in pixels."""

    role = "predictor"

    @torch.inference_mode()
    @full_precision
    def predict(self, windows: np.ndarray, image_sizes: np.ndarray) -> np.ndarray:
        windows = torch.as_tensor(np.asarray(windows), dtype=torch.float32, device=self.device)
        sizes = torch.as_tensor(np.asarray(image_sizes), dtype=torch.float32, device=self.device)
        return self.model(windows, sizes).double().cpu().numpy()
