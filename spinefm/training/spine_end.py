"""Trains the spine-end classifier; reports overall, balanced and per-class accuracy and the confusion matrix."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassConfusionMatrix

from spinefm.data.classes import target_classes
from spinefm.data.levels import is_level, level_index
from spinefm.training.base import ComponentModule

log = logging.getLogger(__name__)
CONFUSION_FILE = "confusion_matrices.csv"  # in the run folder


class SpineEndModule(ComponentModule):
    """`targets` (`ends` | `levels`), `inference.end_levels` (the dataset's, by interpolation in the
    stage config) and the dataset's level range fix the classes: `model.num_classes` and
    `inference.classes` (names in index order) are derived from them here and stored in every
    checkpoint. `class_weights`: optional CE weight per class, in that order.
    """

    component = "spine_end"
    role = "classifier"
    adapter = "spine_end"
    builder = "spinefm.models.spine_end:SpineEndClassifier"

    def __init__(
        self,
        model: dict,
        optimizer: dict,
        scheduler: dict | None = None,
        inference: dict | None = None,
        dataset: dict | None = None,
        class_weights: list[float] | None = None,
        targets: str = "ends",
    ):
        inference = dict(inference or {})
        if "end_levels" not in inference:
            raise ValueError("spine_end needs inference.end_levels (the dataset's end_levels) to know its classes")
        dataset = dict(dataset or {})
        classes = target_classes(
            targets, inference["end_levels"], dataset.get("first_level"), dataset.get("last_level")
        )
        # Rebound before super().__init__ so that save_hyperparameters records the derived values.
        inference["classes"] = classes
        model = {**model, "num_classes": len(classes)}
        if class_weights is not None and len(class_weights) != len(classes):
            raise ValueError(f"class_weights has {len(class_weights)} entries for the {len(classes)} classes {classes}")
        super().__init__(model, optimizer, scheduler, inference, dataset)
        self.classes = classes
        weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", weights, persistent=False)
        self.val_confusion = MulticlassConfusionMatrix(num_classes=len(classes))
        # level targets: which predicted class is within one level of which true class (None: end targets)
        near = None
        if targets == "levels":
            levels = torch.tensor([is_level(c) for c in classes])
            order = torch.tensor([level_index(c) if is_level(c) else 0 for c in classes])
            near = ((order[:, None] - order[None, :]).abs() <= 1) & levels[:, None] & levels[None, :]
        self.register_buffer("level_near", near, persistent=False)
        self.last_confusion_matrix: torch.Tensor | None = None
        self.level_counts: dict[str, dict[int, int]] = {}
        self.class_prior: list[float] | None = None

    def on_fit_start(self) -> None:
        # For the pipeline's decoder: the levels from the top end to the bottom end per view in the
        # training films (its count prior), and the class frequencies the classifier was trained with.
        datamodule = self.trainer.datamodule
        self.level_counts = {
            view: dict(films) for view, films in (getattr(datamodule, "level_counts", None) or {}).items()
        }
        self.class_prior = getattr(datamodule, "class_prior", None)

    def checkpoint_metadata(self) -> dict:
        metadata = super().checkpoint_metadata()
        metadata["model"]["init_checkpoint"] = None  # the state dict holds every weight: loading needs no other file
        metadata["inference"]["level_counts"] = self.level_counts
        metadata["inference"]["class_prior"] = self.class_prior
        return metadata

    def training_step(self, batch, batch_idx):
        logits = self.model(batch["image"])
        loss = F.cross_entropy(logits, batch["label"], weight=self.class_weights)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["label"]))
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self.model(batch["image"])
        loss = F.cross_entropy(logits, batch["label"], weight=self.class_weights)
        self.val_confusion.update(logits.argmax(dim=1), batch["label"])
        self.log("val/loss", loss, batch_size=len(batch["label"]), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        confusion = self.val_confusion.compute()  # rows: true class, columns: predicted
        self.val_confusion.reset()
        support = confusion.sum(dim=1)
        recall = confusion.diag() / support.clamp_min(1)
        present = support > 0
        self.log("val/accuracy", confusion.diag().sum() / confusion.sum().clamp_min(1))
        self.log(
            "val/balanced_accuracy", recall[present].mean() if present.any() else recall.new_zeros(()), prog_bar=True
        )
        for name, value, has_samples in zip(self.classes, recall, present):
            if has_samples:
                self.log(f"val/accuracy_{name}", value)
        if self.level_near is not None:  # vertebrae called their level or a neighbour
            near = self.level_near.to(confusion)
            vertebrae = confusion.sum(dim=1) @ near.diagonal()  # rows of level classes
            self.log("val/level_within_one", (confusion * near).sum() / vertebrae.clamp_min(1))
        self.last_confusion_matrix = confusion.cpu()
        if not self.trainer.sanity_checking and self.trainer.is_global_zero:
            append_confusion(
                Path(self.trainer.default_root_dir) / CONFUSION_FILE, self.current_epoch, confusion, self.classes
            )

    def on_fit_end(self) -> None:
        if self.last_confusion_matrix is not None and self.trainer.is_global_zero:
            table = format_confusion(self.last_confusion_matrix, self.classes)
            log.info("spine_end confusion matrix, last validation (every epoch's: %s):\n%s", CONFUSION_FILE, table)


def append_confusion(path: Path, epoch: int, confusion: torch.Tensor, classes: list[str]) -> None:
    """One row per true class (epoch, true class, count per predicted class) appended to a CSV."""
    new = not path.is_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as file:
        writer = csv.writer(file)
        if new:
            writer.writerow(["epoch", "true", *(f"predicted_{c}" for c in classes)])
        writer.writerows([epoch, name, *map(int, row)] for name, row in zip(classes, confusion.tolist()))


def format_confusion(confusion: torch.Tensor, classes: list[str]) -> str:
    """Text table, rows true class, columns predicted."""
    corner = "true \\ predicted"
    first, width = max(len(corner), *(len(c) for c in classes)) + 2, max(len(c) for c in classes) + 2
    lines = [corner.ljust(first) + "".join(c.rjust(width) for c in classes)]
    for name, row in zip(classes, confusion.tolist()):
        lines.append(name.ljust(first) + "".join(str(int(v)).rjust(width) for v in row))
    return "\n".join(lines)
