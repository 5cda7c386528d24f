"""Map radiographs of any bit depth onto [0, 1] floats, the one input range every model sees."""

from __future__ import annotations

import numpy as np


def to_unit_range(pixels: np.ndarray, low_percentile: float = 0.5, high_percentile: float = 99.5) -> np.ndarray:
    """float32 in [0, 1]: 8-bit images are divided by 255 (as SpineFM did); deeper or float
    images are windowed between two percentiles, so a few extreme pixels do not flatten the rest."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / 255.0
    pixels = pixels.astype(np.float32)
    low, high = np.percentile(pixels, [low_percentile, high_percentile])
    if high <= low:
        low, high = float(pixels.min()), float(pixels.max())
    return np.clip((pixels - low) / max(high - low, 1e-6), 0.0, 1.0)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """8-bit copy for caching and display (same mapping as `to_unit_range`)."""
    if pixels.dtype == np.uint8:
        return pixels
    return np.round(to_unit_range(pixels) * 255).astype(np.uint8)
