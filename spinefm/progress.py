"""Progress that reads well on a terminal and in a log file: a tqdm bar on a terminal; elsewhere (a
file, a pipe, a batch job) one line at every tenth of the way or every 30 seconds, no carriage-return
bars. Lightning's counterpart: `spinefm.progress_bar`."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Iterator

from tqdm import tqdm

LINE_SECONDS = 30.0


def on_terminal() -> bool:
    return sys.stderr.isatty()


class ProgressLines:
    """Counts towards `total` (None: unknown), printing `desc: done/total unit (p %)` to stderr at each
    tenth of the way, after `LINE_SECONDS` without a line, and at the end."""

    def __init__(self, desc: str, total: int | None, unit: str = "it"):
        self.desc, self.total, self.unit = desc, total, unit
        self.done, self.next_tenth, self.last_line = 0, 1, time.monotonic()

    def update(self, count: int = 1, note: str = "") -> None:
        self.done += count
        tenth = math.floor(10 * self.done / self.total) if self.total else 0
        finished = self.total is not None and self.done >= self.total
        if tenth >= self.next_tenth or finished or time.monotonic() - self.last_line >= LINE_SECONDS:
            share = f" ({100 * self.done / self.total:.0f} %)" if self.total else ""
            print(
                f"{self.desc}: {self.done}/{self.total or '?'} {self.unit}{share}{'  ' + note if note else ''}",
                file=sys.stderr,
                flush=True,
            )
            self.next_tenth, self.last_line = tenth + 1, time.monotonic()


def progress(iterable: Iterable, desc: str, total: int | None = None, unit: str = "it") -> Iterator:
    """`iterable` with progress: a tqdm bar on a terminal (cleared at the end), lines elsewhere."""
    total = len(iterable) if total is None and hasattr(iterable, "__len__") else total
    if on_terminal():
        yield from tqdm(iterable, desc=desc, total=total, unit=unit, leave=False)
        return
    lines = ProgressLines(desc, total, unit)
    for item in iterable:
        yield item
        lines.update()
