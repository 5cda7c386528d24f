"""Lightning's progress callback for the output at hand: its tqdm bars on a terminal (inference
counting films, not batches); elsewhere lines (`spinefm.progress.ProgressLines`): a training epoch's
steps with the bar's metrics, one line of validation metrics per epoch, inference's films."""

from __future__ import annotations

import math
import sys

from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

from spinefm.progress import ProgressLines, on_terminal


def progress_bar(refresh_rate: int = 10) -> ProgressBar:
    """Lightning's progress callback for this output: bars on a terminal, lines elsewhere."""
    return FilmCountingBar(refresh_rate) if on_terminal() else ProgressLinesBar()


def films_to_predict(trainer) -> int | None:
    """Films this rank predicts: its sampler's share of the predict loader's dataset."""
    loader = trainer.predict_dataloaders
    sampler = getattr(loader, "sampler", None)
    return len(sampler) if sampler is not None and hasattr(sampler, "__len__") else None


def format_metrics(metrics: dict) -> str:
    return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items() if k != "v_num")


class FilmCountingBar(TQDMProgressBar):
    """Lightning's tqdm bars; the inference bar counts films (a batch holds several)."""

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if not self.has_dataloader_changed(dataloader_idx):
            return
        self.predict_progress_bar.reset(total=films_to_predict(trainer))
        self.predict_progress_bar.unit = "film"
        self.predict_progress_bar.set_description(self.predict_description)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.predict_progress_bar.update(len(batch))


class ProgressLinesBar(ProgressBar):
    """Progress as lines: a training epoch's steps with the bar's metrics, each validation's metrics,
    inference's films. Printed by the first process only."""

    def __init__(self):
        super().__init__()
        self._enabled = True
        self._lines: ProgressLines | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _shown(self, trainer) -> bool:
        return self._enabled and trainer.is_global_zero

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        total = None if math.isinf(self.total_train_batches) else int(self.total_train_batches)
        self._lines = ProgressLines(f"epoch {trainer.current_epoch}", total, "steps")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self._shown(trainer):
            self._lines.update(note=format_metrics(self.get_metrics(trainer, pl_module)))

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._shown(trainer) and not trainer.sanity_checking and trainer.state.fn == "fit":
            print(
                f"epoch {trainer.current_epoch} validated:  {format_metrics(self.get_metrics(trainer, pl_module))}",
                file=sys.stderr,
                flush=True,
            )

    def on_predict_start(self, trainer, pl_module) -> None:
        self._lines = ProgressLines("inference", films_to_predict(trainer), "films")

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self._shown(trainer):
            self._lines.update(len(batch))
