"""Trains the level map: cross-entropy per row; reports how often the row at a vertebra's centroid names its level."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from spinefm.data.level_rows import IGNORE, level_map_names
from spinefm.training.base import ComponentModule


class LevelMapModule(ComponentModule):
    """The dataset's level range and end levels fix the classes (`spinefm.data.level_rows`):
    `model.num_classes` and `inference.names` are derived here and stored in every checkpoint with
    `inference.input_size` (the films' (height, width))."""

    component = "level_map"
    role = "level_mapper"
    adapter = "level_map"
    builder = "spinefm.models.level_map:LevelMapNet"

    def __init__(
        self,
        model: dict,
        optimizer: dict,
        scheduler: dict | None = None,
        inference: dict | None = None,
        dataset: dict | None = None,
        end_levels: dict | None = None,
        label_smoothing: float = 0.05,
    ):
        dataset = dict(dataset or {})
        names = level_map_names(dataset.get("first_level"), dataset.get("last_level"), end_levels or {})
        # Rebound before super().__init__ so that save_hyperparameters records the derived values.
        inference = {**dict(inference or {}), "names": names}
        model = {**model, "num_classes": len(names)}
        super().__init__(model, optimizer, scheduler, inference, dataset)
        self.label_smoothing = label_smoothing
        self.val_exact, self.val_within_one = MeanMetric(), MeanMetric()  # over every centroid row of the epoch

    def _loss(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(batch["image"])
        loss = F.cross_entropy(
            logits.flatten(0, 1), batch["targets"].flatten(), ignore_index=IGNORE, label_smoothing=self.label_smoothing
        )
        return logits, loss

    def training_step(self, batch, batch_idx):
        _, loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["image"]))
        return loss

    def validation_step(self, batch, batch_idx):
        logits, loss = self._loss(batch)
        count = len(batch["image"])
        rows = batch["centres"] & (batch["targets"] != IGNORE)
        offset = (logits.argmax(dim=-1) - batch["targets"])[rows].abs()
        self.log("val/loss", loss, batch_size=count, sync_dist=True)
        self.val_exact.update((offset == 0).float())
        self.val_within_one.update((offset <= 1).float())
        self.log("val/level_accuracy", self.val_exact, prog_bar=True, batch_size=count)
        self.log("val/level_within_one", self.val_within_one, batch_size=count)
