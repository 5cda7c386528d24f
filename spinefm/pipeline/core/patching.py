"""Crops of the image grid: clipping, pasting, and resampling a model's output grid onto image pixels.

Grids share OpenCV's resize convention: pixel centres at integers, so pixel x of a grid `scale`
times finer or coarser than the image sits at (x + 0.5) * scale - 0.5 there.
"""

from __future__ import annotations

import numpy as np


def clip_box(offset, shape, height: int, width: int) -> tuple[int, int, int, int] | None:
    """(xa, ya, xb, yb), the part of the crop at `offset` with `shape` (h, w) inside the image; None if none."""
    x0, y0 = offset
    xa, ya = max(x0, 0), max(y0, 0)
    xb, yb = min(x0 + shape[1], width), min(y0 + shape[0], height)
    return (xa, ya, xb, yb) if xa < xb and ya < yb else None


def paste(crop: np.ndarray, offset, height: int, width: int) -> np.ndarray:
    """An (height, width) array, zero except the crop at `offset` (its part outside the image is dropped)."""
    full = np.zeros((height, width), crop.dtype)
    box = clip_box(offset, crop.shape, height, width)
    if box is not None:
        xa, ya, xb, yb = box
        x0, y0 = offset
        full[ya:yb, xa:xb] = crop[ya - y0 : yb - y0, xa - x0 : xb - x0]
    return full


def axis_samples(count: int, start: int, scale: float, source_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(low, high, fraction) of linear interpolation: output pixel i samples the source at
    (start + i + 0.5) * scale - 0.5, clamped to the source's edge pixels (OpenCV's border)."""
    position = np.clip((start + np.arange(count) + 0.5) * scale - 0.5, 0, source_size - 1)
    low = np.floor(position).astype(np.intp)
    return low, np.minimum(low + 1, source_size - 1), position - low


def resample(source: np.ndarray, scale_xy, start_xy, shape) -> np.ndarray:
    """Bilinear samples of `source` on the output pixels start + (0..w-1, 0..h-1), shape = (h, w), where
    output pixel (x, y) sits at source position ((x + 0.5) * scale_x - 0.5, (y + 0.5) * scale_y - 0.5).

    With start (0, 0) and scale = source size / output size this is cv2.resize(..., INTER_LINEAR)
    of a float image; a non-zero start gives the same values on a sub-window of that output.
    Rows first, then columns: two gathers per axis, no output-size weight matrices.
    """
    source = source.astype(np.float64, copy=False)
    low, high, fraction = axis_samples(shape[0], start_xy[1], scale_xy[1], source.shape[0])
    rows = source[low] * (1 - fraction)[:, None] + source[high] * fraction[:, None]
    low, high, fraction = axis_samples(shape[1], start_xy[0], scale_xy[0], source.shape[1])
    return (rows[:, low] * (1 - fraction) + rows[:, high] * fraction).astype(np.float32)
