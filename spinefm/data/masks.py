"""Operations on cropped binary masks (a mask plus the (x0, y0) of its crop)."""

from __future__ import annotations

import numpy as np


def crop_iou(mask_a: np.ndarray, offset_a, mask_b: np.ndarray, offset_b) -> float:
    """Intersection over union of two cropped masks, without building full-image arrays."""
    intersection, area_a, area_b = _overlap(mask_a, offset_a, mask_b, offset_b)
    union = area_a + area_b - intersection
    return intersection / union if union else 0.0


def crop_containment(mask_a: np.ndarray, offset_a, mask_b: np.ndarray, offset_b) -> float:
    """Intersection over the smaller mask's area: 1 when one mask lies inside the other."""
    intersection, area_a, area_b = _overlap(mask_a, offset_a, mask_b, offset_b)
    smaller = min(area_a, area_b)
    return intersection / smaller if smaller else 0.0


def _overlap(mask_a: np.ndarray, offset_a, mask_b: np.ndarray, offset_b) -> tuple[int, int, int]:
    """(intersection, area of a, area of b) in pixels of two cropped binary masks."""
    (xa, ya), (xb, yb) = offset_a, offset_b
    area_a, area_b = int(mask_a.sum()), int(mask_b.sum())
    x0, y0 = max(xa, xb), max(ya, yb)
    x1 = min(xa + mask_a.shape[1], xb + mask_b.shape[1])
    y1 = min(ya + mask_a.shape[0], yb + mask_b.shape[0])
    if x0 >= x1 or y0 >= y1:
        return 0, area_a, area_b
    part_a = mask_a[y0 - ya : y1 - ya, x0 - xa : x1 - xa]
    part_b = mask_b[y0 - yb : y1 - yb, x0 - xb : x1 - xb]
    return int(np.logical_and(part_a, part_b).sum()), area_a, area_b
