"""The geometry of a chain of vertebrae: ordering, spacing, seeds and the image's bounds."""

from __future__ import annotations

import numpy as np

from spinefm.data.masks import crop_iou
from spinefm.pipeline.core.types import MaskCrop


def mask_score(crop: MaskCrop) -> float:
    """Med-SA's confidence in a mask: the mean probability over the pixels it calls foreground (p > 0.5)."""
    foreground = crop.values[crop.values > 0.5]
    return float(foreground.mean()) if foreground.size else 0.0


def mask_iou(crop: MaskCrop, other: MaskCrop, threshold: float) -> float:
    """IoU of two masks, both binarised at `threshold`."""
    return crop_iou(crop.binary(threshold), crop.offset, other.binary(threshold), other.offset)


def chain_spacing(points: list[np.ndarray]) -> float:
    """Median distance between consecutive points."""
    return float(np.median(np.linalg.norm(np.diff(np.stack(points), axis=0), axis=1)))


def spine_line(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points' total-least-squares line (at least two points): their mean and its unit direction,
    pointing top (small y) to bottom."""
    centre = points.mean(axis=0)
    direction = np.linalg.svd(points - centre, full_matrices=False)[2][0]
    if direction[1] < 0 or (direction[1] == 0 and direction[0] < 0):
        direction = -direction
    return centre, direction


def order_along_spine(points: np.ndarray) -> np.ndarray:
    """Indices ordering the points along their total-least-squares line, top (small y) to bottom."""
    if len(points) < 2:
        return np.arange(len(points))
    centre, direction = spine_line(points)
    return np.argsort((points - centre) @ direction, kind="stable")


def best_run(scores: np.ndarray, length: int) -> int:
    """Start of the `length` consecutive scores with the highest mean (the first on ties)."""
    length = min(length, len(scores))
    return int(np.argmax(np.convolve(scores, np.ones(length), mode="valid")))


def inside(point: np.ndarray, width: int, height: int, margin: float) -> bool:
    x, y = point
    return bool(np.isfinite(point).all() and margin <= x <= width - 1 - margin and margin <= y <= height - 1 - margin)
