"""Operations on cropped binary masks (a mask plus the (x0, y0) of its crop)."""

from __future__ import annotations

import numpy as np


def crop_iou(mask_a: np.ndarray, offset_a, mask_b: np.ndarray, offset_b) -> float:
    """Intersection over union of two cropped masks, without building full-image arrays."""
    (xa, ya), (xb, yb) = offset_a, offset_b
    x0, y0 = max(xa, xb), max(ya, yb)
    x1 = min(xa + mask_a.shape[1], xb + mask_b.shape[1])
    y1 = min(ya + mask_a.shape[0], yb + mask_b.shape[0])
    if x0 >= x1 or y0 >= y1:
        return 0.0
    area_a, area_b = int(mask_a.sum()), int(mask_b.sum())
    part_a = mask_a[y0 - ya : y1 - ya, x0 - xa : x1 - xa]
    part_b = mask_b[y0 - yb : y1 - yb, x0 - xb : x1 - xb]
    intersection = int(np.logical_and(part_a, part_b).sum())
    union = area_a + area_b - intersection
    return intersection / union if union else 0.0
