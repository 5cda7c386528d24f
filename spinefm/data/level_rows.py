"""The level map's classes and targets: which level lies at each row of a film.

Classes (`level_map_names`): `above`, the classifier's level classes (the dataset's range, one level
wider past each end landmark: C7..S1 for T1..L5), `below`. A film's rows take the level of the
annotated vertebra whose span (halfway to each neighbour) holds them; one spacing past its first
(last) vertebra, the level above (below) it; further out, `above` (`below`) where nothing named lies
there, else unknown (IGNORE: a lumbar film's rows above T12 hold thoracic levels at unknown places).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from spinefm.data.classes import level_classes
from spinefm.data.intensity import to_uint8
from spinefm.data.levels import level_above, level_below, level_index, missing_between

ABOVE, BELOW = "above", "below"
IGNORE = -100  # rows whose level is not known (cross-entropy's ignore_index)


def level_map_names(first_level: str | None, last_level: str | None, end_levels: Mapping) -> list[str]:
    """`above`, the levels top to bottom, `below`."""
    return [ABOVE, *level_classes(first_level, last_level, end_levels)[1:], BELOW]


def row_targets(
    ys: Sequence[float], levels: Sequence[str], names: Sequence[str], height: float, rows: int
) -> np.ndarray:
    """(rows,) class indices (IGNORE where unknown) of a film `height` pixels high cut into `rows` bands,
    from its vertebrae's centroid heights and levels (any order)."""
    names = list(names)
    order = np.argsort([level_index(level) for level in levels], kind="stable")
    ys = np.asarray(ys, dtype=np.float64)[order]
    levels = [levels[i] for i in order]
    targets = np.full(rows, IGNORE, dtype=np.int64)
    if len(ys) < 2:
        return targets
    centres = (np.arange(rows) + 0.5) * height / rows
    first_gap, last_gap = ys[1] - ys[0], ys[-1] - ys[-2]
    above, below = level_above(levels[0]), level_below(levels[-1])
    bands = [(-np.inf, ys[0] - 1.5 * first_gap, _past(level_above(above) if above else None, names, ABOVE, far=True))]
    bands.append((ys[0] - 1.5 * first_gap, ys[0] - 0.5 * first_gap, _past(above, names, ABOVE)))
    for k, level in enumerate(levels):
        top = ys[0] - 0.5 * first_gap if k == 0 else (ys[k - 1] + ys[k]) / 2
        bottom = ys[-1] + 0.5 * last_gap if k == len(ys) - 1 else (ys[k] + ys[k + 1]) / 2
        bands.append((top, bottom, names.index(level) if level in names else IGNORE))
    bands.append((ys[-1] + 0.5 * last_gap, ys[-1] + 1.5 * last_gap, _past(below, names, BELOW)))
    bands.append(
        (ys[-1] + 1.5 * last_gap, np.inf, _past(level_below(below) if below else None, names, BELOW, far=True))
    )
    for top, bottom, target in bands:
        targets[(centres >= top) & (centres < bottom)] = target
    for k in range(len(levels) - 1):  # a vertebra missing between two: its rows are unknown
        if missing_between(levels[k], levels[k + 1]):
            targets[(centres > ys[k]) & (centres < ys[k + 1])] = IGNORE
    return targets


def _past(level: str | None, names: list[str], outside: str, far: bool = False) -> int:
    """The class of the band one spacing past a film's annotated vertebrae (`far`: every row further
    out) whose level is `level`: `outside` past the named range; else that level, or for the far rows
    IGNORE (named levels lie there at unknown places)."""
    if level is None or level not in names:
        return names.index(outside)
    return IGNORE if far else names.index(level)


def read_rows(probabilities: np.ndarray, ys: np.ndarray, height: float) -> np.ndarray:
    """(N, K) row probabilities at heights `ys` of a film `height` pixels high, linearly between row centres."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    rows = len(probabilities)
    at = np.clip(np.asarray(ys, dtype=np.float64) / height * rows - 0.5, 0, rows - 1)
    low = np.floor(at).astype(int)
    high = np.minimum(low + 1, rows - 1)
    weight = (at - low)[:, None]
    return (1 - weight) * probabilities[low] + weight * probabilities[high]


def resize_film(film: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """The uint8 film resized to `size` (height, width), its aspect ratio given up: what the level map sees."""
    height, width = (int(s) for s in size)
    interpolation = cv2.INTER_AREA if film.shape[0] > height else cv2.INTER_LINEAR
    return cv2.resize(to_uint8(film), (width, height), interpolation=interpolation)
