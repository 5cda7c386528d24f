"""Post-processing of one chain position: from the segmenter's probabilities to its final mask."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from spinefm.pipeline.core.types import MaskCrop, weighted_centroid


@dataclass
class FinalMask:
    """The position's probabilities cropped to what is kept, its binary mask there, the mask's
    probability-weighted centroid (x, y) in image pixels and its mean probability (score)."""

    probability: MaskCrop
    mask: np.ndarray
    centroid: np.ndarray
    score: float


def final_mask(
    probability: MaskCrop,
    threshold: float,
    smooth_sigma: float = 0.0,
    opening_radius: int = 0,
    crop_floor: float = 0.1,
    dtype: str = "float16",
) -> FinalMask | None:
    """Smooth (Gaussian, px; 0: none), threshold, open (disc radius, px; 0: none); crop to the mask
    and the pixels above `crop_floor`. None when nothing is left."""
    values = probability.values.astype(np.float32)
    if values.size == 0:
        return None
    smoothed = cv2.GaussianBlur(values, (0, 0), smooth_sigma) if smooth_sigma > 0 else values
    mask = smoothed > threshold
    if opening_radius > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * opening_radius + 1,) * 2)
        mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, kernel) > 0
    if not mask.any():
        return None
    rows, cols = np.nonzero(mask | (values > crop_floor))
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    values, mask = values[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    offset = (probability.offset[0] + int(x0), probability.offset[1] + int(y0))
    centroid = weighted_centroid(np.where(mask, smoothed[y0:y1, x0:x1], 0), offset)
    return FinalMask(MaskCrop(values.astype(dtype), offset), mask, centroid, float(values[mask].mean()))
