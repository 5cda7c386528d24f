"""Vertebral level vocabulary: names, ordering, neighbours and gaps.

Levels run top to bottom C1..C7, T1..T12, L1..L6, S1. L6 is a transitional
level present in a minority of spines, so it is never counted as missing.
"""

from __future__ import annotations

LEVELS: tuple[str, ...] = (
    *(f"C{i}" for i in range(1, 8)),
    *(f"T{i}" for i in range(1, 13)),
    *(f"L{i}" for i in range(1, 7)),
    "S1",
)
OPTIONAL_LEVELS: frozenset[str] = frozenset({"L6"})
_INDEX = {name: i for i, name in enumerate(LEVELS)}


def normalize_level(name: str) -> str:
    """Canonical spelling of a level name ('l3', ' L3 ' -> 'L3'); ValueError if unknown."""
    canonical = str(name).strip().upper()
    if canonical not in _INDEX:
        raise ValueError(f"unknown vertebral level {name!r}; expected one of {', '.join(LEVELS)}")
    return canonical


def is_level(name: str) -> bool:
    return str(name).strip().upper() in _INDEX


def level_index(name: str) -> int:
    """Position of a level in the top-to-bottom order (C1 = 0)."""
    return _INDEX[normalize_level(name)]


def level_range(first: str, last: str, include_optional: bool = False) -> list[str]:
    """Levels from `first` to `last` inclusive, top to bottom."""
    lo, hi = level_index(first), level_index(last)
    if lo > hi:
        raise ValueError(f"level range {first}..{last} runs bottom to top")
    return [lv for lv in LEVELS[lo : hi + 1] if include_optional or lv not in OPTIONAL_LEVELS or lv in (first, last)]


def level_above(name: str) -> str | None:
    """The next level towards the skull, skipping optional levels; None above C1."""
    i = level_index(name) - 1
    while i >= 0 and LEVELS[i] in OPTIONAL_LEVELS:
        i -= 1
    return LEVELS[i] if i >= 0 else None


def level_below(name: str) -> str | None:
    """The next level towards the sacrum, skipping optional levels; None below S1."""
    i = level_index(name) + 1
    while i < len(LEVELS) and LEVELS[i] in OPTIONAL_LEVELS:
        i += 1
    return LEVELS[i] if i < len(LEVELS) else None


def missing_between(upper: str, lower: str) -> list[str]:
    """Non-optional levels strictly between two levels (empty when they are neighbours)."""
    lo, hi = sorted((level_index(upper), level_index(lower)))
    return [lv for lv in LEVELS[lo + 1 : hi] if lv not in OPTIONAL_LEVELS]


def are_adjacent(upper: str, lower: str) -> bool:
    return upper != lower and not missing_between(upper, lower)


def sort_levels(names) -> list[str]:
    return sorted((normalize_level(n) for n in names), key=level_index)


def offset_level(name: str, steps: int) -> str | None:
    """The level `steps` positions below (positive) or above (negative), skipping optional levels."""
    step = level_below if steps > 0 else level_above
    current: str | None = normalize_level(name)
    for _ in range(abs(steps)):
        if current is None:
            return None
        current = step(current)
    return current
