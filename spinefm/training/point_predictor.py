"""Trains the next-centroid predictor; reports errors in pixels and in vertebra heights."""

from __future__ import annotations

import torch.nn.functional as F
from torchmetrics import MeanMetric

from spinefm.models.point_predictor import normalise
from spinefm.training.base import ComponentModule


class PointPredictorModule(ComponentModule):
    component = "point_predictor"
    role = "predictor"
    adapter = "point_predictor"
    builder = "spinefm.models.point_predictor:PointPredictor"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.val_error_px = MeanMetric()
        self.val_error_heights = MeanMetric()
        self.val_baseline_px = MeanMetric()

    def checkpoint_metadata(self) -> dict:
        metadata = super().checkpoint_metadata()
        metadata["model"]["init_checkpoint"] = None  # the state dict holds every weight: loading needs no other file
        return metadata

    def _predict(self, batch):
        """(loss in model coordinates, prediction in pixels)."""
        origin, scale = self.model.frame(batch["window"], batch["image_size"])
        prediction = self.model.forward_normalised(normalise(batch["window"], origin, scale))
        loss = F.mse_loss(prediction, normalise(batch["target"], origin, scale))
        return loss, prediction * scale + origin

    def training_step(self, batch, batch_idx):
        loss, _ = self._predict(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["target"]))
        return loss

    def validation_step(self, batch, batch_idx):
        loss, predicted = self._predict(batch)
        error = (predicted - batch["target"]).norm(dim=-1)
        window = batch["window"]
        constant_velocity = window[:, 2] + (window[:, 2] - window[:, 1])
        self.val_error_px.update(error)
        self.val_error_heights.update(error / batch["target_height"].clamp_min(1e-6))
        self.val_baseline_px.update((constant_velocity - batch["target"]).norm(dim=-1))
        size = len(batch["target"])
        self.log("val/loss", loss, batch_size=size, sync_dist=True)
        self.log("val/error_px", self.val_error_px, prog_bar=True, batch_size=size)
        self.log("val/error_heights", self.val_error_heights, batch_size=size)
        self.log("val/baseline_error_px", self.val_baseline_px, batch_size=size)
