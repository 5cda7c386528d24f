"""Decode a walked chain as a whole: which positions are vertebrae of the labelled range, and their levels.

The chain is every position the walk segmented, top to bottom (the up walk reversed, the seeds, the
down walk). A hidden level runs along it. Each position is either a vertebra, one level below the
previous vertebra (L5 -> L6 -> S1 with the dataset's L6 rate, else L5 -> S1), or junk that keeps
the level (a disc, soft tissue, the edge of a vertebra already found). Before the first vertebra and
after the last, the chain may run off the spine (the skull, the pelvis, soft tissue beyond a cut-off
film): two catch-all states. The Viterbi path maximises the joint likelihood of:

- the spine-end classifier's class probabilities at each position. A classifier with level classes
  says which level each position is: a level's evidence is its own class (L6, which has none, the
  mean of L5 and S1). End classes are read through the evidence rows of `DecodeConfig` (the view's
  top end level expects `top_end`, its bottom end level `bottom_end`, the levels between `vertebra`).
  A level past the range with no class of its own next to one that has (C6 above C7, whose patches
  trained as background and are called C7 as often) reads the mean of that class and the `outside`
  row; other levels without a class and the chain's ends off the spine read the `outside` row
  (mostly `background`; `vertebra` there means any level class), junk `background`;
- the level map's probabilities at each position's row, where the loop has one (a model that sees the
  whole film: `spinefm.models.level_map`): a level reads its own name (L6 the mean of L5 and S1's),
  levels past the names and the chain off the spine `above` or `below`; junk after a vertebra reads
  the mean of that level and the next (it lies between them);
- the detector's support at each position (the best score of a detection there), which speaks for a
  vertebra of the range the detector was trained on;
- the count prior: the number of levels from the top end to the bottom end is fixed by the level
  order up to L6, whose rate the training data gives;
- a small bonus for including the view's anchor level, which decides between equally good paths
  (a chain with no end evidence counts from its anchor, as before);
- the chain's geometry: a vertebra may follow the previous one two levels down (the walk stepped
  over a vertebra) at `skip_probability`, more likely where the gap between the two positions is
  about twice the chain's local spacing (`gap_ratios`; log-normal gap likelihoods), so that one
  step over a vertebra does not shift every label below it. Across one junk position the gap is
  the one from the vertebra before it, so dropping a position shifts no level below it for free;
  a skip there costs its prior at least (the junk may lie on the vertebra the gap lacks, called
  background, which is then better kept). The gap only decides between one level and two: the
  better of them costs its prior alone, so a wide gap (a walk overshooting past an end) makes the
  next level unlikely rather than paying a path to step over a vertebra there.

Each position's evidence is floored (`min_evidence`), so no single call can veto a path: one wrong
call costs at most log(1 / min_evidence), and a whole chain outvotes it; the level map's evidence is
floored the same way. Pure numpy; no model here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spinefm.data.level_rows import ABOVE, BELOW
from spinefm.data.levels import LEVELS, is_level, level_above, level_below, level_index, normalize_level
from spinefm.pipeline.core.chain_gaps import gap_ratios, transitions
from spinefm.settings import check_fractions

# Evidence rows: for each kind of position, the weight of each classifier class in its evidence.
DEFAULT_EVIDENCE = {
    "vertebra": {"vertebra": 1.0, "top_end": 0.2, "bottom_end": 0.2},
    "top_end": {"top_end": 1.0},
    "bottom_end": {"bottom_end": 1.0},
    "outside": {"background": 1.0, "vertebra": 0.1},
    "junk": {"background": 1.0},
}
OFF_BEFORE, OFF_AFTER = (
    "off_before",
    "off_after",
)  # the chain off the spine, before its first and after its last vertebra
L5, L6, S1 = (level_index(name) for name in ("L5", "L6", "S1"))
REAL, ONE_JUNK, JUNK = range(3)  # the decoder's kinds of position: a real state, junk right after one, later junk


@dataclass
class DecodeConfig:
    """evidence: rows as DEFAULT_EVIDENCE (given rows replace its rows). min_evidence: floor of every
    position's classifier evidence. junk_probability: prior of a position being junk. edge_probability:
    prior of the chain starting or ending inside the labelled range other than at its ends. detector_weight:
    exponent of the detector evidence (0: ignore the detector). level_map_weight: exponent of the level
    map's evidence (0: ignore it). A vertebra of the labelled range has
    likelihood `score` if a detection lies there, else detector_miss; anything else 1 - score (at
    least detector_floor) if one lies there, else 1. anchor_bonus: likelihood ratio
    for a path that includes the view's anchor level. l6_rate: L6 between L5 and S1 when the
    checkpoints carry no count prior for the view. skip_probability: prior of a vertebra two levels
    below the previous one (0: never); the gap to the previous position, as a ratio of the local
    spacing, is log-normal around 1 (sd step_gap_sigma) for one level and around skip_gap (sd
    skip_gap_sigma) for two."""

    evidence: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_EVIDENCE))
    min_evidence: float = 0.05
    junk_probability: float = 0.05
    edge_probability: float = 0.1
    detector_weight: float = 1.0
    level_map_weight: float = 1.0
    detector_miss: float = 0.5
    detector_floor: float = 0.1
    anchor_bonus: float = 1.5
    l6_rate: float = 0.05
    skip_probability: float = 0.02
    step_gap_sigma: float = 0.12
    skip_gap: float = 1.8
    skip_gap_sigma: float = 0.25

    def __post_init__(self):
        self.evidence = {**DEFAULT_EVIDENCE, **{k: dict(v) for k, v in dict(self.evidence).items()}}
        check_fractions(
            self,
            (
                "min_evidence",
                "junk_probability",
                "edge_probability",
                "detector_miss",
                "detector_floor",
                "l6_rate",
                "skip_probability",
            ),
            prefix="decode.",
        )
        if (
            not 0.0 < self.junk_probability < 1.0
            or min(self.min_evidence, self.edge_probability) <= 0.0
            or self.anchor_bonus < 1.0
            or self.skip_probability >= 1.0
            or min(self.step_gap_sigma, self.skip_gap_sigma) <= 0.0
            or self.skip_gap <= 1.0
        ):
            raise ValueError(
                "decode needs 0 < junk_probability < 1, min_evidence and edge_probability > 0, anchor_bonus >= 1,"
                " skip_probability < 1, gap sigmas > 0 and skip_gap > 1"
            )


@dataclass
class ChainView:
    """What the decoder knows of the film's view: its end landmarks (levels the classifier's
    `top_end` / `bottom_end` mark, None where it has none), the labelled range kept (None: open),
    the anchor end and the L6 rate."""

    top_end: str | None
    bottom_end: str | None
    first_level: str | None
    last_level: str | None
    anchor: str = "top"
    l6_rate: float = 0.05

    @classmethod
    def of(cls, top_end, bottom_end, first_level, last_level, anchor: str = "top", l6_rate: float = 0.05) -> ChainView:
        """A ChainView with level names in their canonical spelling."""
        top_end, bottom_end, first_level, last_level = (
            normalize_level(level) if level else None for level in (top_end, bottom_end, first_level, last_level)
        )
        return cls(top_end, bottom_end, first_level, last_level, anchor, l6_rate)

    @property
    def anchor_level(self) -> str | None:
        return self.first_level if self.anchor == "top" else self.last_level


@dataclass(frozen=True)
class ChainRecord:
    """What the decoder reads of a chain, top to bottom. probabilities (N, C): the classifier's, in
    `classes` order (a NaN row: not classified); support (N,): the detector's score at each position
    (0: none there); class_prior: the class frequencies the classifier was trained with (None:
    equal); centroids (N, 2) of the positions (None, or NaN rows: no geometry); level_map (N, K): the
    level map's probabilities over `level_names` at each position (None: no level map)."""

    probabilities: np.ndarray
    classes: Sequence[str]
    support: np.ndarray
    view: ChainView
    class_prior: Sequence[float] | None = None
    centroids: np.ndarray | None = None
    level_map: np.ndarray | None = None
    level_names: Sequence[str] | None = None


@dataclass
class Decoded:
    """Per position: its level (None for junk and off the spine) and whether it is kept (a vertebra of
    the labelled range); log_likelihood of the path."""

    levels: list[str | None]
    kept: list[bool]
    log_likelihood: float


def l6_rate_from_counts(counts: Mapping | None, top: str | None, bottom: str | None, default: float) -> float:
    """The share of films with L6 among those annotated from `top` to `bottom` ({levels: films}),
    where the range spans L5..S1; `default` otherwise."""
    if not counts or top is None or bottom is None or not level_index(top) <= L5 < S1 <= level_index(bottom):
        return default
    usual = level_index(bottom) - level_index(top)  # levels from top to bottom without L6
    films = {int(k): float(v) for k, v in counts.items()}
    with_l6, without = films.get(usual + 1, 0.0), films.get(usual, 0.0)
    return with_l6 / (with_l6 + without) if with_l6 + without > 0 else default


def decode_chain(chain: ChainRecord, config: DecodeConfig) -> Decoded:
    """The most likely levels of a chain. The class prior is divided out, so that every class weighs
    the same and the chain's structure alone says how rare the ends are; without centroids a skip
    has its prior alone."""
    classes, support, view, centroids = chain.classes, chain.support, chain.view, chain.centroids
    probabilities = np.asarray(chain.probabilities, dtype=np.float64).reshape(len(support), len(classes))
    if chain.class_prior is not None:
        probabilities = probabilities / np.asarray(chain.class_prior, dtype=np.float64)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
    count = len(probabilities)
    if count == 0:
        return Decoded([], [], 0.0)
    if view.first_level is None and view.last_level is None and view.top_end is None and view.bottom_end is None:
        return Decoded([None] * count, [False] * count, 0.0)  # nothing to count from
    states = _States(view, config.edge_probability)
    evidence = _evidence(probabilities, list(classes), np.asarray(support, dtype=np.float64), states, config)
    if chain.level_map is not None and config.level_map_weight > 0:
        evidence = _with_level_map(
            evidence, np.asarray(chain.level_map, dtype=np.float64), chain.level_names, states, config
        )
    junk = np.log(config.junk_probability)
    stay = np.log1p(-config.junk_probability)
    successor = _successor_scores(states, view.l6_rate)  # (S, S) log P(next real state | real state)
    if centroids is None:
        ratios = over_junk = np.full(count, np.nan)
    else:
        ratios, over_junk = gap_ratios(centroids), gap_ratios(centroids, span=2)
    after_real = transitions(successor, ratios, config)  # (N, S, S)
    after_one_junk = transitions(successor, over_junk, config, skip_reward=False)  # from the vertebra before
    after_junk = transitions(successor, np.full(1, np.nan), config)[0]  # (S, S): the gap says nothing
    size = len(states.names)
    # score[kind][i, s]: the best path to position i in real state s (REAL), or in junk after real
    # state s, the vertebra in s at i - 1 (ONE_JUNK) or further back (JUNK); origin[kind, i, s]: the
    # previous position's (kind, state) on that path.
    score = np.full((3, count, size), -np.inf)
    origin = np.zeros((3, count, size, 2), dtype=np.int64)
    score[REAL, 0] = evidence.real[0] + states.enter
    score[JUNK, 0, 0] = junk + evidence.junk[0, 0]  # junk first: still off the spine
    states_index = np.arange(size)
    for i in range(1, count):
        arrivals = np.stack(  # (kind before, previous real, next real)
            [
                score[REAL, i - 1][:, None] + after_real[i],
                score[ONE_JUNK, i - 1][:, None] + after_one_junk[i],
                score[JUNK, i - 1][:, None] + after_junk,
            ]
        ).reshape(3 * size, size)
        best = arrivals.argmax(axis=0)
        score[REAL, i] = arrivals[best, states_index] + stay + evidence.real[i]
        origin[REAL, i] = np.stack([best // size, best % size], axis=1)
        score[ONE_JUNK, i] = score[REAL, i - 1] + junk + evidence.junk[i]
        origin[ONE_JUNK, i] = np.stack([np.full(size, REAL), states_index], axis=1)
        longer = score[JUNK, i - 1] > score[ONE_JUNK, i - 1]
        score[JUNK, i] = np.maximum(score[JUNK, i - 1], score[ONE_JUNK, i - 1]) + junk + evidence.junk[i]
        origin[JUNK, i] = np.stack([np.where(longer, JUNK, ONE_JUNK), states_index], axis=1)
    return _backtrack(score + states.leave, origin, states)


class _States:
    """The real states: OFF_BEFORE, C1..S1, OFF_AFTER; their evidence rows and whether each is kept."""

    def __init__(self, view: ChainView, edge_probability: float):
        self.names = [OFF_BEFORE, *LEVELS, OFF_AFTER]
        first = level_index(view.first_level) if view.first_level else 0
        last = level_index(view.last_level) if view.last_level else len(LEVELS) - 1
        self.kept = np.array([False, *(first <= i <= last for i in range(len(LEVELS))), False])
        self.rows = ["outside" if not kept else "vertebra" for kept in self.kept]
        for end, row in ((view.top_end, "top_end"), (view.bottom_end, "bottom_end")):
            if end:
                self.rows[1 + level_index(end)] = row
        self.anchor = 1 + level_index(view.anchor_level) if view.anchor_level else None
        self.missing_ends = {
            name for end, name in ((view.top_end, "top_end"), (view.bottom_end, "bottom_end")) if not end
        }
        # Where the view has a top (bottom) landmark, the chain enters (leaves) the labelled range there
        # for free, elsewhere only at `edge_probability` (a film cut off inside the range, a walk that
        # failed); without that landmark, where the chain begins (ends) says nothing.
        self.enter, self.leave = np.zeros(len(self.names)), np.zeros(len(self.names))
        for end, costs in ((view.top_end, self.enter), (view.bottom_end, self.leave)):
            if end:
                costs[self.kept] = np.log(edge_probability)
                costs[1 + level_index(end)] = 0.0


def _successor_scores(states: _States, l6_rate: float) -> np.ndarray:
    """log P(next real state | real state): one level down (L6 at l6_rate); off the spine before it,
    the chain may enter at any level; after any level, it may leave the spine for good."""
    size = len(states.names)
    scores = np.full((size, size), -np.inf)
    for state in range(1, size - 1):
        scores[state, state + 1] = 0.0
    scores[0, : size - 1] = states.enter[: size - 1]
    scores[:, size - 1] = states.leave
    l5, l6, s1 = 1 + L5, 1 + L6, 1 + S1
    with np.errstate(divide="ignore"):
        scores[l5, l6], scores[l5, s1] = np.log(l6_rate), np.log1p(-l6_rate)
    return scores


@dataclass
class _Evidence:
    real: np.ndarray  # (N, S) log evidence per real state
    junk: np.ndarray  # (N, S) log evidence of junk after each real state


def _evidence(
    probabilities: np.ndarray, classes: list[str], support: np.ndarray, states: _States, config: DecodeConfig
) -> _Evidence:
    unknown = ~np.isfinite(probabilities).all(axis=1)
    probabilities = np.where(unknown[:, None], 1.0 / len(classes), probabilities)

    weights = _class_weights(states, classes, config)
    logs = np.log(_floored(probabilities @ weights.T, config.min_evidence))  # (N, S + 1): the real states, then junk
    detected = support > 0
    in_range = config.detector_weight * np.log(
        np.where(detected, np.maximum(support, config.detector_floor), config.detector_miss)
    )
    out_of_range = config.detector_weight * np.log(
        np.where(detected, np.maximum(1.0 - support, config.detector_floor), 1.0)
    )
    real = logs[:, :-1] + np.where(states.kept[None, :], in_range[:, None], out_of_range[:, None])
    if states.anchor is not None:
        real[:, states.anchor] += np.log(config.anchor_bonus)
    junk = logs[:, -1] + out_of_range
    return _Evidence(real, np.repeat(junk[:, None], real.shape[1], axis=1))


def _floored(evidence: np.ndarray, min_evidence: float) -> np.ndarray:
    """Evidence in [0, 1] raised to at least `min_evidence`, so that no single call vetoes a path."""
    return min_evidence + (1.0 - min_evidence) * np.clip(evidence, 0.0, 1.0)


def _with_level_map(
    evidence: _Evidence, level_map: np.ndarray, names: Sequence[str], states: _States, config: DecodeConfig
) -> _Evidence:
    """The evidence with the level map's added: each real state reads its names (`_map_weights`),
    junk after a state the mean of that state's and the next one's."""
    floored = _floored(level_map @ _map_weights(states, list(names)).T, config.min_evidence)  # (N, S)
    after = np.minimum(np.arange(1, floored.shape[1] + 1), floored.shape[1] - 1)  # the next state (off stays off)
    real = config.level_map_weight * np.log(floored)
    junk = config.level_map_weight * np.log((floored + floored[:, after]) / 2)
    return _Evidence(evidence.real + real, evidence.junk + junk)


def _map_weights(states: _States, names: list[str]) -> np.ndarray:
    """(S, K): the weight of each level map name in each real state's evidence."""
    levels = [n for n in names if is_level(n)]
    first, last = level_index(levels[0]), level_index(levels[-1])
    rows = []
    for name in states.names:
        if name in names:
            read = [name]
        elif name == OFF_BEFORE or (name in LEVELS and level_index(name) < first):
            read = [ABOVE]
        elif name == OFF_AFTER or (name in LEVELS and level_index(name) > last):
            read = [BELOW]
        else:  # an optional level (L6) inside the names: its neighbours'
            read = [n for n in (level_above(name), level_below(name)) if n in names]
        rows.append([float(n in read) / len(read) for n in names])
    return np.array(rows)


def _class_weights(states: _States, classes: list[str], config: DecodeConfig) -> np.ndarray:
    """(S + 1, C): the weight of each class in the evidence of each real state, then of junk."""
    level_classes = [is_level(c) for c in classes]

    def row(name: str) -> np.ndarray:
        spec = config.evidence[name]
        weights = np.array([spec.get(c, 0.0) for c in classes])
        if any(level_classes):  # `vertebra` in a row: any level
            weights[level_classes] = spec.get("vertebra", 0.0)
        elif name == "vertebra":  # an end class where the view has no such end is a vertebra all the same
            weights[[c in states.missing_ends for c in classes]] = 1.0
        if not weights.any():  # a landmark the classifier has no class for says nothing beyond `vertebra`
            return row("vertebra")
        return weights

    def level_row(level: str) -> np.ndarray | None:
        """A level's own class; one without (L6): the mean of its neighbours'; None: neither has one."""
        if level in classes:
            return np.array([float(c == level) for c in classes])
        neighbours = [n for n in (level_above(level), level_below(level)) if n in classes]
        if not neighbours:
            return None
        return np.array([float(c in neighbours) / len(neighbours) for c in classes])

    if not any(level_classes):
        return np.stack([*(row(kind) for kind in states.rows), row("junk")])
    rows = []
    for name, kept in zip(states.names, states.kept):
        own = level_row(name) if name in LEVELS else None
        if own is not None and name not in classes and not kept:
            # beyond the classes (C6 above C7): trained as background, called its neighbour as often
            own = (own + row("outside")) / 2
        rows.append(row("outside") if own is None else own)
    return np.stack([*rows, row("junk")])


def _backtrack(score: np.ndarray, origin: np.ndarray, states: _States) -> Decoded:
    """The best path's states, read back from its last position (score and origin as decode_chain's)."""
    count, size = score.shape[1], score.shape[2]
    best = int(score[:, -1].argmax())
    kind, state = divmod(best, size)
    path = [None] * count  # real state index, or None for junk
    for i in range(count - 1, -1, -1):
        path[i] = state if kind == REAL else None
        kind, state = (int(v) for v in origin[kind, i, state])
    levels = [None if s is None or states.names[s] in (OFF_BEFORE, OFF_AFTER) else states.names[s] for s in path]
    kept = [s is not None and bool(states.kept[s]) for s in path]
    return Decoded(levels, kept, float(score[:, -1].max()))
