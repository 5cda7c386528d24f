"""Many films' walks in lockstep, in one thread.

Each film's walk (`InductiveLoop.walk`) is a generator that yields its requests
(`spinefm.pipeline.core.requests`) and is sent their answers. `run_walks` gathers the requests of every
walk in flight and serves each kind with ONE batched call of its role, kinds in turn in a step's
order. The walk's own code decides every step, so each film's result is exactly `loop.run`'s.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Mapping, Sequence

from spinefm.pipeline.core.requests import KINDS, Request
from spinefm.pipeline.core.types import LoopResult

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
