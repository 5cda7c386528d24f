"""Films' outputs written off the loop's path: label map, overlay and JSON cost a few hundred ms per
film (PNG encoding, polygons, RLE, JSON), as much as everything else the loop does on a GPU.

`WriterPool` writes in `processes` spawned processes (0: in this process, at once), holding at most
`backlog` films in flight; `collect` hands back each finished film's outcome. The processes die with
the run (`interrupt.init_writer`) and leave a stop signal to it: on a stop, `close` waits for the
writes running and drops the ones not started, so no output is ever partial.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from spinefm.interrupt import init_writer
from spinefm.io_utils import atomic_write_json, atomic_write_png
from spinefm.pipeline.core.types import LoopResult
from spinefm.pipeline.io.format import instances_json, label_map, output_paths
from spinefm.pipeline.io.render import overlay


@dataclass
class Written:
    """A film's outcome: `error` is None when its outputs were written."""

    film_id: str
    path: str
    error: str | None = None


def _write(film_id: str, path: str, arguments: tuple) -> Written:
    try:
        write_outputs(*arguments)
        return Written(film_id, path)
    except Exception as error:
        return Written(film_id, path, f"writing outputs failed: {type(error).__name__}: {error}")


class WriterPool:
    def __init__(self, processes: int, backlog: int):
        self.processes = processes
        self.backlog = max(backlog, 1)
        self._executor: ProcessPoolExecutor | None = None
        self._pending: list[Future] = []
        self._done: list[Written] = []

    def start(self) -> None:
        """Start the processes now rather than at the first film."""
        if self.processes and self._executor is None:
            context = multiprocessing.get_context("spawn")  # fork is unsafe in a process holding CUDA or threads
            self._executor = ProcessPoolExecutor(self.processes, context, partial(init_writer, os.getpid()))
            for _ in range(self.processes):  # the executor spawns its processes on demand
                self._executor.submit(int)

    def submit(self, film_id: str, path: str, *arguments) -> None:
        """Write `outputs.write_outputs(*arguments)` for a film; blocks while `backlog` films are in flight."""
        if self.processes == 0:
            self._done.append(_write(film_id, path, arguments))
            return
        self.start()
        while len(self._pending) >= self.backlog:
            self._harvest(wait(self._pending, return_when=FIRST_COMPLETED).done)
        self._pending.append(self._executor.submit(_write, film_id, path, arguments))

    def collect(self) -> list[Written]:
        """The outcomes of the films finished since the last call."""
        self._harvest([future for future in self._pending if future.done()])
        done, self._done = self._done, []
        return done

    def close(self, drop_waiting: bool = False) -> list[Written]:
        """Finish every write (drop_waiting: only the running ones, on a stop, without waiting for the
        processes to end); the outcomes not collected yet."""
        if self._executor is not None:
            if drop_waiting:
                for future in self._pending:
                    future.cancel()  # false for the running ones, which finish
                wait(self._pending)
            self._executor.shutdown(wait=not drop_waiting)
            self._executor = None
        return self.collect()

    def _harvest(self, futures) -> None:
        for future in futures:
            self._pending.remove(future)
            if not future.cancelled():
                self._done.append(future.result())


def write_outputs(
    output_dir, result: LoopResult, image: np.ndarray, image_info: dict, overlay_cfg: dict
) -> dict[str, Path]:
    """The label map, overlay and instances JSON of one film (the JSON last: it marks the film done)."""
    paths = output_paths(output_dir, result.image_id)
    labels = label_map(result)
    atomic_write_png(paths["labels"], labels)
    atomic_write_png(paths["overlay"], overlay(image, result, labels, overlay_cfg["max_side"], overlay_cfg["alpha"]))
    atomic_write_json(paths["instances"], instances_json(result, image_info))
    return paths
