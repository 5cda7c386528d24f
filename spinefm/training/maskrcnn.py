"""Trains Mask R-CNN; validates on detection quality (mask mAP, centroid recall), not on loss."""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.detection import MeanAveragePrecision

from spinefm.models.maskrcnn import class_levels
from spinefm.training.base import ComponentModule

INFERENCE_KEYS = ("image_size", "score_threshold", "mask_threshold", "class_mode")


class CentroidRecall(Metric):
    """Fraction of ground-truth vertebrae whose mask centroid lies inside a kept predicted mask
    (score > score_threshold, probability > mask_threshold), whatever its label: the pipeline
    starts from these centroids."""

    def __init__(self, score_threshold: float, mask_threshold: float):
        super().__init__()
        self.score_threshold = score_threshold
        self.mask_threshold = mask_threshold
        self.add_state("found", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, outputs: list[dict], targets: list[dict]) -> None:
        for output, target in zip(outputs, targets):
            kept = output["masks"][output["scores"] > self.score_threshold, 0] > self.mask_threshold
            covered = kept.any(dim=0)  # (H, W), all False without detections
            x, y = mask_centroids(target["masks"]).round().long().unbind(dim=1)
            self.found = self.found + covered[y, x].sum()
            self.total = self.total + len(x)

    def compute(self) -> torch.Tensor:
        return self.found / self.total.clamp_min(1)


def mask_centroids(masks: torch.Tensor) -> torch.Tensor:
    """(N, 2) (x, y) centres of area of (N, H, W) binary masks."""
    masks = masks.float()
    area = masks.sum(dim=(1, 2)).clamp_min(1)
    ys = torch.arange(masks.shape[1], device=masks.device, dtype=masks.dtype)
    xs = torch.arange(masks.shape[2], device=masks.device, dtype=masks.dtype)
    return torch.stack([(masks.sum(dim=1) * xs).sum(dim=1) / area, (masks.sum(dim=2) * ys).sum(dim=1) / area], dim=1)


class MaskRCNNModule(ComponentModule):
    """`model` are build_maskrcnn's arguments; num_classes follows `inference.class_mode`:
    2 for single, the dataset's level count + 1 for per_level (whose levels `inference` records).
    `inference` must hold image_size, score_threshold, mask_threshold and class_mode.

    Every validation logs val/centroid_recall; val/map and val/map_50 (COCO mask mAP, the costly part)
    come from the first validation of a fit, every `map_every_n_validations`-th after it and the last
    epoch's. In between, callbacks monitoring val/map see its latest value: no new best, and early
    stopping's patience counts on.
    """

    component = "maskrcnn"
    role = "detector"
    adapter = "maskrcnn"
    builder = "spinefm.models.maskrcnn:build_maskrcnn"

    def __init__(
        self,
        model: dict,
        optimizer: dict,
        scheduler: dict | None = None,
        inference: dict | None = None,
        dataset: dict | None = None,
        map_every_n_validations: int = 1,
    ):
        inference, dataset = dict(inference or {}), dict(dataset or {})
        missing = [key for key in INFERENCE_KEYS if key not in inference]
        if missing:
            raise ValueError(f"the maskrcnn stage's module.inference lacks {missing}; see configs/stage/maskrcnn.yaml")
        levels = class_levels(inference["class_mode"], dataset.get("first_level"), dataset.get("last_level"))
        num_classes = 2 if levels is None else len(levels) + 1
        if model.get("num_classes") not in (None, num_classes):
            raise ValueError(
                f"model.num_classes is {model['num_classes']} but class_mode {inference['class_mode']} on levels "
                f"{dataset.get('first_level')}..{dataset.get('last_level')} needs {num_classes}; set it to null"
            )
        model = {**model, "num_classes": num_classes}
        if levels is not None:
            inference["levels"] = levels
        super().__init__(model, optimizer, scheduler, inference, dataset)
        if map_every_n_validations < 1:
            raise ValueError(f"map_every_n_validations must be at least 1, not {map_every_n_validations}")
        self.map_every_n_validations = map_every_n_validations
        self.val_map = MeanAveragePrecision(iou_type="segm")
        self.val_centroid_recall = CentroidRecall(inference["score_threshold"], inference["mask_threshold"])
        self.validations = 0  # of this fit, sanity check left out
        self.nonfinite_loss = torch.zeros((), dtype=torch.bool)

    def checkpoint_metadata(self) -> dict:
        info = super().checkpoint_metadata()
        info["model"]["init_checkpoint"] = None  # the trained weights replace it: rebuilding must not need that file
        return info

    def training_step(self, batch, batch_idx):
        images, targets = batch
        losses = self.model(list(images), list(targets))
        loss = sum(losses.values())
        self.check_finite(loss, losses)
        size = len(images)
        for name, value in losses.items():
            self.log(f"train/{name}", value, batch_size=size)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        return loss

    def check_finite(self, loss: torch.Tensor, losses: dict) -> None:
        """Raise on a non-finite loss. Checked at logging steps only, as the check waits for the GPU;
        a non-finite loss spoils the weights, so the losses after it are non-finite too."""
        self.nonfinite_loss = self.nonfinite_loss.to(loss.device) | ~torch.isfinite(loss)
        if (self.global_step + 1) % self.trainer.log_every_n_steps and not self.trainer.is_last_batch:
            return
        if self.nonfinite_loss:
            values = {name: float(value) for name, value in losses.items()}
            raise FloatingPointError(
                f"non-finite Mask R-CNN loss by step {self.global_step}: {values}; lower the learning rate "
                "(stage.module.optimizer.lr) or check the annotations"
            )

    @property
    def computes_map(self) -> bool:
        """Whether this validation computes mAP (see the class's description)."""
        last_epoch = (self.trainer.max_epochs or -1) > 0 and self.current_epoch + 1 >= self.trainer.max_epochs
        return self.trainer.sanity_checking or last_epoch or self.validations % self.map_every_n_validations == 0

    def on_fit_start(self) -> None:
        self.validations = 0

    def validation_step(self, batch, batch_idx):
        images, targets = batch
        outputs = self.model(list(images))
        if self.computes_map:
            threshold = self.hparams.inference["mask_threshold"]
            self.val_map.update(
                [
                    {"masks": o["masks"][:, 0] > threshold, "scores": o["scores"], "labels": o["labels"]}
                    for o in outputs
                ],
                [{"masks": t["masks"].bool(), "labels": t["labels"]} for t in targets],
            )
        self.val_centroid_recall.update(outputs, targets)
        self.log("val/centroid_recall", self.val_centroid_recall, prog_bar=True, batch_size=len(images))

    def on_validation_epoch_end(self) -> None:
        if self.computes_map:
            result = self.val_map.compute()
            # COCO evaluation reports -1 when nothing at all was detected: a mAP of 0 here
            self.log("val/map", result["map"].clamp_min(0), prog_bar=True, sync_dist=True)  # equal on every rank
            self.log("val/map_50", result["map_50"].clamp_min(0), sync_dist=True)
            self.val_map.reset()
        if not self.trainer.sanity_checking:
            self.validations += 1
