"""Progress that reads well on a terminal and in a log file: a tqdm bar on a terminal; elsewhere (a
file, a pipe, a batch job) a few lines, no carriage-return bars. Lightning's counterpart:
`spinefm.progress_bar`."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator

from tqdm import tqdm

QUIET_SECONDS = 5.0  # work shorter than this prints its last line only
LINE_SECONDS = 30.0  # the longest silence after that


def on_terminal() -> bool:
    return sys.stderr.isatty()


def print_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class ProgressLines:
    """Counts towards `total` (None: unknown), printing `desc: done/total unit (p %)`. Once the work
    has run `QUIET_SECONDS`: at each tenth of the way and after `LINE_SECONDS` without a line; and,
    with `last_line`, at the end."""

    def __init__(self, desc: str, total: int | None, unit: str = "it", last_line: bool = True):
        self.desc, self.total, self.unit, self.last_line = desc, total, unit, last_line
        self.done, self.next_tenth = 0, 1
        self.started = self.printed = time.monotonic()

    def update(self, count: int = 1, note: Callable[[], str] | None = None) -> None:
        """`note`: called for text to add to a line, only when one is printed."""
        self.done += count
        now = time.monotonic()
        tenth = math.floor(10 * self.done / self.total) if self.total else 0
        finished = self.total is not None and self.done >= self.total
        due = tenth >= self.next_tenth or now - self.printed >= LINE_SECONDS
        if (finished and self.last_line) or (due and now - self.started >= QUIET_SECONDS):
            share = f" ({100 * self.done / self.total:.0f} %)" if self.total else ""
            extra = f"  {note()}" if note else ""
            print_line(f"{self.desc}: {self.done}/{self.total or '?'} {self.unit}{share}{extra}")
            self.next_tenth, self.printed = tenth + 1, now


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
