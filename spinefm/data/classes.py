"""The spine-end classifier's classes: what a patch centred on a position is called.

Two class sets (`targets`):
- `ends`: they follow a dataset's `end_levels` ({view: {top: level | null, bottom: level | null}}):
  `background` and `vertebra` always, `top_end` / `bottom_end` only where some view names one;
- `levels`: `background` and one class per level (`level_classes`), so that every position of a
  chain says which vertebra it is, not only whether it is an end.
The pipeline takes these calls as evidence: a direction ends after `patience` doubtful steps in a row
(background, or a call of its end: `end_calls`), and the chain decoder labels the chain (docs/method.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from spinefm.data.levels import (
    LEVELS,
    OPTIONAL_LEVELS,
    is_level,
    level_above,
    level_below,
    level_index,
    normalize_level,
)

BACKGROUND, VERTEBRA, TOP_END, BOTTOM_END = "background", "vertebra", "top_end", "bottom_end"
TARGETS = ("ends", "levels")


def view_end_levels(end_levels: Mapping, view: str | None) -> Mapping:
    """{top, bottom} of a view; a view that is None or not listed uses the `default` entry, if any."""
    if view is not None and view in end_levels:
        return end_levels[view] or {}
    return end_levels.get("default") or {}


def class_names(end_levels: Mapping) -> list[str]:
    """Class names in index order for a dataset's end levels."""
    ends = [e or {} for e in end_levels.values()]
    names = [BACKGROUND, VERTEBRA]
    if any(e.get("top") for e in ends):
        names.append(TOP_END)
    if any(e.get("bottom") for e in ends):
        names.append(BOTTOM_END)
    return names


def level_classes(first_level: str | None, last_level: str | None, end_levels: Mapping) -> list[str]:
    """`background`, then the levels from first_level to last_level, widened by one level past every
    view's end landmark (C7 above T1, S1 below L5: where a walk overshoots, so the classifier names
    it instead of calling it background), top to bottom; optional levels (L6) are left out."""
    if not first_level or not last_level:
        raise ValueError("level targets need the dataset's first_level and last_level")
    first, last = level_index(first_level), level_index(last_level)
    if first > last:
        raise ValueError(f"level range {first_level}..{last_level} runs bottom to top")
    for ends in end_levels.values():
        ends = ends or {}
        if ends.get("top") and (beyond := level_above(ends["top"])):
            first = min(first, level_index(beyond))
        if ends.get("bottom") and (beyond := level_below(ends["bottom"])):
            last = max(last, level_index(beyond))
    return [BACKGROUND, *(lv for lv in LEVELS[first : last + 1] if lv not in OPTIONAL_LEVELS)]


def target_classes(targets: str, end_levels: Mapping, first_level: str | None, last_level: str | None) -> list[str]:
    """The class names, in index order, of a classifier trained with `targets` (`TARGETS`)."""
    if targets not in TARGETS:
        raise ValueError(f"unknown spine-end targets {targets!r}; expected one of {TARGETS}")
    return class_names(end_levels) if targets == "ends" else level_classes(first_level, last_level, end_levels)


def end_calls(classes: list[str], top: str | None, bottom: str | None) -> dict[str, frozenset[str]]:
    """{"top": classes, "bottom": classes} that call a film's end: `top_end` / `bottom_end` where
    the classes have them, else the levels at or past the view's top (bottom) landmark, if any."""
    calls = {}
    for end, landmark, class_name, past in (("top", top, TOP_END, -1), ("bottom", bottom, BOTTOM_END, 1)):
        if class_name in classes:
            calls[end] = frozenset({class_name})
        elif not landmark:
            calls[end] = frozenset()
        else:
            mark = level_index(landmark)
            calls[end] = frozenset(c for c in classes if is_level(c) and (level_index(c) - mark) * past >= 0)
    return calls


def vertebra_class(level: str, view: str | None, end_levels: Mapping) -> str:
    """`top_end` / `bottom_end` for its view's end levels, otherwise `vertebra`."""
    ends = view_end_levels(end_levels, view)
    level = normalize_level(level)
    if ends.get("top") and level == normalize_level(ends["top"]):
        return TOP_END
    if ends.get("bottom") and level == normalize_level(ends["bottom"]):
        return BOTTOM_END
    return VERTEBRA


def sample_class(level: str | None, view: str | None, classes: list[str], end_levels: Mapping) -> str | None:
    """The class of a patch centred on `level` (None: background): its end class or `vertebra`
    (end targets), else the level itself; None where the classes have no place for it (L6)."""
    if level is None:
        return BACKGROUND
    if VERTEBRA in classes:
        return vertebra_class(level, view, end_levels)
    level = normalize_level(level)
    return level if level in classes else None


def levels_between_ends(levels: list[str], view: str | None, end_levels: Mapping) -> int | None:
    """How many annotated levels run from the view's top end to its bottom end (both included; L6
    counts where annotated); None unless the view has both ends and the film annotates both."""
    ends = view_end_levels(end_levels, view)
    if not ends.get("top") or not ends.get("bottom"):
        return None
    names = [normalize_level(level) for level in levels]
    top, bottom = normalize_level(ends["top"]), normalize_level(ends["bottom"])
    if top not in names or bottom not in names:
        return None
    return names.index(bottom) - names.index(top) + 1
