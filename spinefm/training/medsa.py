"""Trains Med-SA (adapters + mask decoder) on vertebra patches; checkpoints hold only the trained parameters."""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from spinefm.checkpoints import MODEL_PREFIX
from spinefm.training.base import ComponentModule


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - Dice of the probabilities with the (soft) target, per sample, averaged."""
    probability = logits.sigmoid().flatten(1)
    target = target.flatten(1)
    overlap = (probability * target).sum(1)
    return (1 - (2 * overlap + eps) / (probability.sum(1) + target.sum(1) + eps)).mean()


def dice_and_iou(predicted: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample Dice and IoU of binary masks (B, ...); both are 1 where both masks are empty."""
    predicted, target = predicted.flatten(1).float(), target.flatten(1).float()
    overlap = (predicted * target).sum(1)
    total = predicted.sum(1) + target.sum(1)
    union = total - overlap
    empty = total == 0
    dice = torch.where(empty, torch.ones_like(total), 2 * overlap / total.clamp_min(1))
    iou = torch.where(empty, torch.ones_like(total), overlap / union.clamp_min(1))
    return dice, iou


class MedSAModule(ComponentModule):
    """Loss: BCE-with-logits (`pos_weight`) + `dice_weight` x soft Dice loss (0: SpineFM's BCE only).

    Validation: `val/dice` and `val/iou`, per sample, of the prediction binarised at probability
    `val_threshold`, by default the final masks' (`inference.final_threshold`, else `mask_threshold`),
    against the target binarised at 0.5. `inference` is completed with the model's `input_size` and
    `low_res_size` for the pipeline.

    Checkpoints hold only the trained parameters (`trainable_state_dict`) and the base
    model's identity (`MedSA(**identity)` rebuilds the frozen part); resuming fills the frozen part
    back in from the model built here, after checking it is the same base model.
    """

    component = "medsa"
    role = "segmenter"
    adapter = "medsa"
    builder = "spinefm.models.medsa:MedSA"

    def __init__(
        self,
        model: dict,
        optimizer: dict,
        scheduler: dict | None = None,
        inference: dict | None = None,
        dataset: dict | None = None,
        pos_weight: float = 2.0,
        dice_weight: float = 1.0,
        val_threshold: float | None = None,
    ):
        if val_threshold is None and "mask_threshold" not in (inference or {}):
            raise ValueError(
                "medsa needs val_threshold or inference.mask_threshold: the probability binarising masks for val/dice"
            )
        super().__init__(model, optimizer, scheduler, inference, dataset)
        self.pos_weight = pos_weight
        self.dice_weight = dice_weight
        if val_threshold is None:  # what the pipeline's final masks will be binarised at
            final = inference.get("final_threshold")
            val_threshold = inference["mask_threshold"] if final is None else final
        self.val_threshold = float(val_threshold)
        self.val_dice = MeanMetric()
        self.val_iou = MeanMetric()

    def forward(self, batch: dict) -> torch.Tensor:
        return self.model(batch["image"], points=batch.get("point"), boxes=batch.get("box"))

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=logits.new_tensor(self.pos_weight))
        return bce + self.dice_weight * soft_dice_loss(logits, target) if self.dice_weight else bce

    def training_step(self, batch, batch_idx):
        loss = self.loss(self(batch), batch["target"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["image"]))
        return loss

    def on_validation_epoch_start(self) -> None:
        # Trainer.validate leaves inference-mode state tensors behind, which a later fit cannot update.
        self.val_dice.reset()
        self.val_iou.reset()

    def validation_step(self, batch, batch_idx):
        logits = self(batch)
        size = len(batch["image"])
        self.log("val/loss", self.loss(logits, batch["target"]), batch_size=size, sync_dist=True)
        dice, iou = dice_and_iou(logits.sigmoid() > self.val_threshold, batch["target"] >= 0.5)
        self.val_dice.update(dice)
        self.val_iou.update(iou)
        self.log("val/dice", self.val_dice, prog_bar=True, batch_size=size)
        self.log("val/iou", self.val_iou, batch_size=size)

    def checkpoint_metadata(self) -> dict:
        info = super().checkpoint_metadata()
        info["model"] = self.model.base_identity()
        info["inference"].update(input_size=self.model.input_size, low_res_size=self.model.low_res_size)
        info["trainable_only"] = True
        return info

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["state_dict"] = {MODEL_PREFIX + k: v for k, v in self.model.trainable_state_dict().items()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        info = checkpoint.get("spinefm") or {}
        if not info.get("trainable_only"):
            return
        built = self.model.base_identity()
        # a setting that older checkpoints lack had its default value
        defaults = {k: p.default for k, p in inspect.signature(type(self.model)).parameters.items()}
        saved = {**{k: defaults[k] for k in built if k in defaults}, **(info.get("model") or {})}
        differ = {
            k: (saved.get(k), built.get(k)) for k in sorted(set(saved) | set(built)) if saved.get(k) != built.get(k)
        }
        if differ:
            raise ValueError(
                f"this Med-SA checkpoint was trained on another base model; (checkpoint, config) values: {differ}. "
                "Set stage.module.model to the checkpoint's values to resume from it"
            )
        # Frozen parameters come from the base model built here, so the checkpoint loads strictly.
        checkpoint["state_dict"] = {**self.state_dict(), **checkpoint["state_dict"]}
