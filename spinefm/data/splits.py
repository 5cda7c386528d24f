"""Seeded train/val/test assignment for sources without split files, by patient group."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def assign_splits(groups: list[str], fractions: Mapping[str, float], seed: int) -> dict[str, str]:
    """Map each distinct group to a split so that split sizes follow `fractions`.

    Groups (e.g. patients with several films) never straddle two splits. The assignment depends
    only on the set of groups and the seed, not on listing order.
    """
    unique = sorted(set(groups))
    names = [name for name, fraction in fractions.items() if fraction > 0]
    if not names:
        raise ValueError(f"split fractions {dict(fractions)} are all zero")
    weights = np.array([fractions[name] for name in names], dtype=float)
    counts = np.floor(weights / weights.sum() * len(unique)).astype(int)
    # Hand out the rounding remainder largest-fraction first, so each non-empty split gets a group early.
    for i in np.argsort(-weights)[: len(unique) - counts.sum()]:
        counts[i] += 1
    order = np.random.default_rng(seed).permutation(len(unique))
    assignment, start = {}, 0
    for name, count in zip(names, counts):
        for i in order[start : start + count]:
            assignment[unique[i]] = name
        start += count
    return assignment
