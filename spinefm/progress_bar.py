"""Lightning's progress callback for the output at hand: its tqdm bars on a terminal (inference
counting films, not batches); elsewhere a few lines (`spinefm.progress.ProgressLines`): a long
epoch's steps with the bar's metrics, the validation metrics of the first and last epochs and of
one epoch every `LINE_SECONDS` (every epoch's are in the run's metrics.csv), inference's films."""

from __future__ import annotations

import math
import time

from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

from spinefm.progress import LINE_SECONDS, ProgressLines, on_terminal, print_line


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
    """Progress as lines (see the module's description), printed by the first process only. The
    bar's metrics, which wait for the GPU, are read only for a line that is printed."""

    def __init__(self):
        super().__init__()
        self._enabled = True
        self._lines: ProgressLines | None = None
        self._validated = 0.0  # when the last validation line was printed

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _shown(self, trainer) -> bool:
        return self._enabled and trainer.is_global_zero

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        total = None if math.isinf(self.total_train_batches) else int(self.total_train_batches)
        self._lines = ProgressLines(f"epoch {trainer.current_epoch}", total, "steps", last_line=False)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self._shown(trainer):
            self._lines.update(note=lambda: format_metrics(self.get_metrics(trainer, pl_module)))

    def on_validation_end(self, trainer, pl_module) -> None:
        if not self._shown(trainer) or trainer.sanity_checking or trainer.state.fn != "fit":
            return
        epoch, now = trainer.current_epoch, time.monotonic()
        last = trainer.max_epochs is not None and epoch + 1 >= trainer.max_epochs
        quiet_since = max(self._validated, self._lines.printed if self._lines else 0.0)
        if epoch == 0 or last or now - quiet_since >= LINE_SECONDS:
            print_line(f"epoch {epoch} validated:  {format_metrics(self.get_metrics(trainer, pl_module))}")
            self._validated = now

    def on_predict_start(self, trainer, pl_module) -> None:
        self._lines = ProgressLines("inference", films_to_predict(trainer), "films")

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self._shown(trainer):
            self._lines.update(len(batch))
