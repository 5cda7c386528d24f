"""Many films' walks in lockstep, in one thread.

Each film's walk (`InductiveLoop.walk`) is a generator that yields its requests
(`spinefm.pipeline.requests`) and is sent their answers. `run_walks` gathers the requests of every
walk in flight and serves each kind with ONE batched call of its role, kinds in turn in a step's
order. The walk's own code decides every step, so each film's result is exactly `loop.run`'s.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from spinefm.pipeline.requests import KINDS, Request
from spinefm.pipeline.types import LoopResult

if TYPE_CHECKING:
    from spinefm.pipeline.loop import InductiveLoop

Walk = Generator[Request, object, LoopResult]


def run_walks(
    walks: Sequence[Walk], components: Mapping[str, object], detect_by_shape: bool = True, calls: Counter | None = None
) -> list[LoopResult]:
    """Each walk's result, in order. components: role -> component; calls counts the batched calls per kind."""
    results: list[LoopResult | None] = [None] * len(walks)
    waiting: dict[int, Request] = {}

    def advance(i: int, answer) -> None:
        try:
            waiting[i] = walks[i].send(answer)
        except StopIteration as finished:
            results[i] = finished.value

    for i in range(len(walks)):
        advance(i, None)
    turn = 0
    while waiting:
        kind = next(k for k in KINDS[turn:] + KINDS[:turn] if any(type(r) is k for r in waiting.values()))
        turn = (KINDS.index(kind) + 1) % len(KINDS)
        batches: dict[object, list[int]] = {}
        for i, request in waiting.items():
            if type(request) is kind:
                batches.setdefault(request.batch_key(detect_by_shape), []).append(i)
        for films in batches.values():
            answers = kind.serve(components[kind.role], [waiting.pop(i) for i in films])
            if calls is not None:
                calls[kind.__name__.lower()] += 1
            for i, answer in zip(films, answers, strict=True):
                advance(i, answer)
    return results


class LockstepRunner:
    """Runs a loop's films together; `calls` counts the batched calls per kind of the last run.

    detect_by_shape: one detector call per distinct film shape, so results equal `loop.run`'s;
    False: one call for all films, faster on films of mixed sizes but not identical to `loop.run`.
    """

    def __init__(self, loop: InductiveLoop, detect_by_shape: bool = True):
        self.loop = loop
        self.detect_by_shape = detect_by_shape
        self.calls: Counter = Counter()

    def run_many(
        self,
        images: Sequence[np.ndarray],
        views: Sequence[str | None] | None = None,
        image_ids: Sequence[str | None] | None = None,
    ) -> list[LoopResult]:
        """The same results as `[loop.run(image, view, image_id) ...]`, in the images' order."""
        views = list(views) if views is not None else [None] * len(images)
        image_ids = list(image_ids) if image_ids is not None else [None] * len(images)
        if not len(views) == len(image_ids) == len(images):
            raise ValueError(f"{len(images)} images but {len(views)} views and {len(image_ids)} image ids")
        walks = [self.loop.walk(self.loop.film(image, i), view, i) for image, view, i in zip(images, views, image_ids)]
        self.calls = Counter()
        return run_walks(walks, self.loop.components, self.detect_by_shape, self.calls)
