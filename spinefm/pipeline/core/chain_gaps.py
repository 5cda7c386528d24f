"""The chain's geometry for the decoder: how far each position lies from the one before it, in local
spacings, and what that says of one level or two between them (a step over a vertebra)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from spinefm.pipeline.core.decode import DecodeConfig


def gap_ratios(centroids: np.ndarray, window: int = 3, span: int = 1) -> np.ndarray:
    """Per position, the distance to the one `span` positions before it over the median of the other
    consecutive distances within `window` positions (the local spacing); NaN for the first `span`
    and where a centroid is unknown."""
    centroids = np.asarray(centroids, dtype=np.float64).reshape(-1, 2)
    gaps = np.full(len(centroids), np.nan)
    gaps[1:] = np.linalg.norm(np.diff(centroids, axis=0), axis=1)
    ratios = np.full(len(centroids), np.nan)
    for i in range(span, len(centroids)):
        distance = np.linalg.norm(centroids[i] - centroids[i - span])
        around = np.concatenate([gaps[max(1, i - span + 1 - window) : i - span + 1], gaps[i + 1 : i + 1 + window]])
        around = around[np.isfinite(around)]
        if np.isfinite(distance) and around.size:
            ratios[i] = distance / np.median(around)
    return ratios


def transitions(
    successor: np.ndarray, ratios: np.ndarray, config: DecodeConfig, skip_reward: bool = True
) -> np.ndarray:
    """log P(real state at i | the previous real state) per position (N, S, S), with one level
    skipped at skip_probability; where the gap (`ratios`) is known, its likelihood ratio (two levels :
    one level) is charged to the less likely of the two. Without `skip_reward` (across junk) a skip
    never costs less than its prior: the junk may lie on the vertebra the gap lacks, better kept."""
    size = len(successor)
    levels = slice(1, size - 1)
    skip = np.full((size, size), -np.inf)  # two levels down where one level is the rule
    for state in range(1, size - 3):
        if np.isfinite(successor[state, state + 1]) and not np.isfinite(successor[state, state + 2]):
            skip[state, state + 2] = 0.0
    with np.errstate(divide="ignore"):
        one, two = np.log1p(-config.skip_probability), np.log(config.skip_probability)
    log_ratio = np.log(np.where(np.isfinite(ratios) & (ratios > 0), ratios, 1.0))
    likelihood_ratio = np.where(
        np.isfinite(ratios),
        0.5 * (log_ratio / config.step_gap_sigma) ** 2
        - 0.5 * ((log_ratio - np.log(config.skip_gap)) / config.skip_gap_sigma) ** 2
        + np.log(config.step_gap_sigma / config.skip_gap_sigma),
        0.0,
    )

    def combined(skip_term: float) -> np.ndarray:
        # the better of one level and two costs nothing beyond its prior (a ratio alone would reward
        # a skip at any wide gap, where a path could collect it by shifting its levels)
        excess = max(0.0, skip_term + two - one)
        scores = successor.copy()
        scores[levels, levels] += one - excess
        skip_score = two + skip_term - excess
        return np.maximum(scores, skip + (skip_score if skip_reward else min(skip_score, two)))

    return np.stack([combined(term) for term in likelihood_ratio])
