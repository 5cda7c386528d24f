"""The inductive loop under Lightning's `Trainer.predict`: films in lockstep batches, on any devices.

`PipelineModule.predict_step` runs one batch of films together (`LockstepRunner`); `OutputWriter`
hands each film's outputs to writer processes (`writers.WriterPool`) as its batch ends and, at the
end, writes one `summary.json` for the whole run. Under DDP (several GPUs, nodes, or CPU processes) Lightning gives
each rank its own share of the inputs without repeating any (prediction uses an unrepeated sampler),
each rank writes its films' outputs, and rank 0 writes the summary of all ranks.

A stop signal (`spinefm.interrupt`) drops the batch in flight; the summary of the films done so far
is written, marked `interrupted`, and the run's next start does only the rest.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from functools import partial
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, Callback
from torch import nn
from torch.utils.data import DataLoader

from spinefm.data.record import ImageRecord
from spinefm.interrupt import Interrupted, init_worker, reinstall, stop_ranks
from spinefm.io_utils import atomic_write_json
from spinefm.pipeline.core.loop import InductiveLoop, LockstepRunner
from spinefm.pipeline.core.types import LoopResult
from spinefm.pipeline.runner.films import FilmDataset, FilmSettings, LoadedFilm
from spinefm.pipeline.runner.inputs import InputImage
from spinefm.pipeline.runner.writers import WriterPool, Written


class PipelineModule(pl.LightningModule):
    """A loop whose components' networks are registered here, so Lightning moves them to each rank's
    device and its precision setting (autocast) applies to them. `view`: for films without their own."""

    def __init__(self, loop: InductiveLoop, view: str | None = None):
        super().__init__()
        self.loop = loop
        self.view = view
        models = {role: getattr(component, "model", None) for role, component in loop.components.items()}
        self.networks = nn.ModuleDict({role: model for role, model in models.items() if isinstance(model, nn.Module)})

    def predict_step(self, batch: list[LoadedFilm], batch_idx: int) -> list[tuple[LoadedFilm, LoopResult | str | None]]:
        """Each loaded film with its result, the error that stopped it, or None where not run (done or unusable)."""
        usable = [loaded for loaded in batch if loaded.pixels is not None]
        outcomes = dict(zip((loaded.id for loaded in usable), self._run(usable)))
        return [(loaded, outcomes.get(loaded.id)) for loaded in batch]

    def _run(self, batch: list[LoadedFilm]) -> list[LoopResult | str]:
        if not batch:
            return []
        try:
            views = [loaded.view or self.view for loaded in batch]
            return LockstepRunner(self.loop).run_many([f.pixels for f in batch], views, [f.id for f in batch])
        except Exception:  # a film broke the batch: run them one by one, so only that film fails
            return [self._run_one(loaded) for loaded in batch]

    def _run_one(self, loaded: LoadedFilm) -> LoopResult | str:
        try:
            return self.loop.run(loaded.pixels, loaded.view or self.view, loaded.id)
        except Exception as error:
            return f"inference failed: {type(error).__name__}: {error}"


class OutputWriter(BasePredictionWriter):
    """Passes each film's outputs to the writer pool as its batch ends, counts what was written, and
    writes the run's `summary.json` at the end:
    input, output, world_size, processed / skipped (already done) ids, failed [{id, path, reason}], total,
    per_rank (counts of each rank), seconds, interrupted (null, or the signal that stopped the run).
    `summary` holds it afterwards on every rank. A stopped run's summary counts this rank's films only:
    gathering the others' could hang on a rank that is stopping too."""

    def __init__(self, output_dir, source, overlay: dict, writers: WriterPool):
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.source = str(source)
        self.overlay = overlay
        self.writers = writers
        self.summary: dict | None = None
        self.start = time.perf_counter()
        self.processed, self.skipped, self.failed = [], [], []

    def on_predict_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()
        self.writers.start()  # the processes start while the first films are read and walked

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ) -> None:
        for loaded, outcome in prediction:
            if loaded.done:
                self.skipped.append(loaded.id)
            elif loaded.problem is not None or not isinstance(outcome, LoopResult):
                self.failed.append({"id": loaded.id, "path": str(loaded.path), "reason": loaded.problem or outcome})
            else:
                self.writers.submit(
                    loaded.id, str(loaded.path), self.output_dir, outcome, loaded.pixels, loaded.info, self.overlay
                )
        self._count(self.writers.collect())

    def on_predict_end(self, trainer, pl_module) -> None:
        self._count(self.writers.close())
        self._summarise(trainer, _gather(self._counts()), interrupted=None)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._count(self.writers.close(drop_waiting=True))
        if isinstance(exception, Interrupted):
            self._summarise(trainer, [self._counts()], interrupted=exception.name)
            if trainer.is_global_zero:
                exception.add_note(
                    f"{len(self.processed)} films done, summary in {self.output_dir / 'summary.json'}; "
                    "a run into the same output folder does only the rest"
                )

    def _count(self, written: list[Written]) -> None:
        for film in written:
            if film.error is None:
                self.processed.append(film.film_id)
            else:
                self.failed.append({"id": film.film_id, "path": film.path, "reason": film.error})

    def _counts(self) -> tuple[list, list, list]:
        return self.processed, self.skipped, self.failed

    def _summarise(self, trainer, parts: list, interrupted: str | None) -> None:
        summary = {"input": self.source, "output": str(self.output_dir), "world_size": trainer.world_size}
        for key, index in (("processed", 0), ("skipped", 1), ("failed", 2)):
            summary[key] = sorted(
                (item for part in parts for item in part[index]),
                key=lambda item: item if isinstance(item, str) else item["id"],
            )
        summary["total"] = sum(len(summary[key]) for key in ("processed", "skipped", "failed"))
        summary["per_rank"] = [dict(zip(("processed", "skipped", "failed"), map(len, part))) for part in parts]
        summary["seconds"] = round(time.perf_counter() - self.start, 3)
        summary["interrupted"] = interrupted
        if trainer.is_global_zero:
            atomic_write_json(self.output_dir / "summary.json", summary)
        self.summary = summary


class KeepStopHandlers(Callback):
    """Keeps `interrupt.stop_on_signals` in force while Lightning runs, and passes a stop on to the ranks
    this process launched. Lightning replaces the SIGTERM handler when a run starts with one that
    broadcasts to every rank (and so hangs when a rank is stopped alone)."""

    def on_predict_start(self, trainer, pl_module) -> None:
        reinstall()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, Interrupted) and trainer.strategy.launcher is not None:
            stop_ranks(trainer.strategy.launcher, exception.signum)


def _gather(part) -> list:
    """Every rank's `part` (a picklable object), in rank order."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [part]
    parts = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, part)
    return parts


class TrimHeap(Callback):
    """Hands the heap's free memory back to the system after each batch of films (glibc's malloc_trim).

    glibc raises its mmap threshold as large blocks are freed, so later films' arrays land on the heap
    and fragment it (RSS grew ~0.4 MB per film over ~400 films: benchmarks/pipeline_memory.py). A fixed
    low threshold bounded that, but mapped and unmapped every activation: infer.py on 8 AASCE films
    took 148 s with it, 134 s trimming once per batch, 129 s with neither."""

    def __init__(self):
        libc = ctypes.CDLL(None) if sys.platform.startswith("linux") else None
        self.malloc_trim = getattr(libc, "malloc_trim", None)  # glibc only

    def on_predict_batch_end(self, *args, **kwargs) -> None:
        if self.malloc_trim is not None:
            self.malloc_trim(0)


def predict_films(
    loop: InductiveLoop,
    inputs: list[InputImage | ImageRecord],
    output_dir,
    trainer_factory,
    *,
    source: str = "",
    view: str | None = None,
    settings: FilmSettings | None = None,
    films_per_batch: int = 8,
    num_workers: int = 0,
    writers: int = 0,
    overlay: dict | None = None,
) -> dict | None:
    """Infer the films into `output_dir`; returns the summary on global rank 0 (None on the others).

    trainer_factory(callbacks) -> a Lightning Trainer (devices, strategy, precision are its business).
    source: what the summary names as the input. films_per_batch: films advancing together;
    num_workers: DataLoader processes reading films ahead; writers: processes writing outputs (0: the loop's own).
    """
    dataset = FilmDataset(inputs, output_dir, settings or FilmSettings())
    loader = DataLoader(
        dataset,
        batch_size=films_per_batch,
        num_workers=num_workers,
        collate_fn=FilmDataset.collate,
        worker_init_fn=partial(init_worker, os.getpid()),
    )
    writer = OutputWriter(
        output_dir, source, overlay or {"max_side": 2048, "alpha": 0.4}, WriterPool(writers, 2 * films_per_batch)
    )
    trainer = trainer_factory([writer, KeepStopHandlers(), TrimHeap()])
    if inputs:
        trainer.predict(PipelineModule(loop, view), dataloaders=loader, return_predictions=False)
    else:  # nothing to predict: the summary says so
        writer.on_predict_end(trainer, None)
    return writer.summary if trainer.is_global_zero else None


def format_summary(summary: dict) -> str:
    lines = [
        f"{summary['total']} films: {len(summary['processed'])} processed, "
        f"{len(summary['skipped'])} skipped (already done), "
        f"{len(summary['failed'])} failed, {summary['seconds']:.1f} s -> {summary['output']}"
    ]
    lines += [f"  failed {f['id']}: {f['reason']}" for f in summary["failed"]]
    return "\n".join(lines)
