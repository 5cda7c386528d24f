"""The overlay picture of a film: its image in grey with each vertebra's mask in colour, outlined
and named (`<id>.overlay.png`, scaled to `max_side` px on its long side when larger)."""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import find_objects

from spinefm.data.intensity import to_uint8
from spinefm.data.levels import level_index
from spinefm.pipeline.core.types import LoopResult
from spinefm.pipeline.io.format import label_value


def level_colour(level: str) -> tuple[int, int, int]:
    """A BGR colour per level; neighbours differ in hue by about 137 degrees (the golden angle)."""
    hue = int(level_index(level) * 137.5 % 360 / 2)
    return tuple(int(c) for c in cv2.cvtColor(np.uint8([[[hue, 170, 255]]]), cv2.COLOR_HSV2BGR)[0, 0])


def overlay(image: np.ndarray, result: LoopResult, labels: np.ndarray, max_side: int, alpha: float) -> np.ndarray:
    """A BGR picture of the film's image with each vertebra's mask, outline and level name."""
    return draw_levels(image, labels, [(i.level, i.centroid) for i in result.instances], max_side, alpha)


def draw_levels(image: np.ndarray, labels: np.ndarray, levels, max_side: int, alpha: float) -> np.ndarray:
    """The image in grey, scaled to `max_side` on its long side when larger, with the label map's masks
    for `levels` ((level, centroid) pairs) in colour, outlined and named."""
    scale = picture_scale(image.shape, max_side)
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    grey = cv2.resize(to_uint8(image), size, interpolation=cv2.INTER_AREA)
    small = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
    picture = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    thickness = max(1, round(max(size) / 800))
    font_scale = max(0.35, max(size) / 1600)
    boxes = find_objects(small)  # per label value, the slices of its bounding box (None: absent)
    for level, centroid in levels:
        value = label_value(level)
        box = boxes[value - 1] if value <= len(boxes) else None
        if box is None:
            continue
        mask, region, colour = small[box] == value, picture[box], level_colour(level)
        region[mask] = ((1 - alpha) * region[mask] + alpha * np.array(colour)).astype(np.uint8)
        origin = (box[1].start, box[0].start)
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=origin)
        cv2.drawContours(picture, contours, -1, colour, thickness)
        right = origin[0] + int(np.nonzero(mask.any(axis=0))[0].max())
        _label(picture, level, right, centroid[1] * scale, colour, font_scale, thickness)
    return picture


def picture_scale(shape: tuple[int, int], max_side: int) -> float:
    return min(1.0, max_side / max(shape))


def _label(picture, level: str, right: int, y: float, colour, font_scale: float, thickness: int) -> None:
    """The level name just right of the mask's rightmost column `right`, at height `y`, dark-edged to read
    on any film."""
    x = right + 3 * thickness
    y = int(round(y))
    (width, height), _ = cv2.getTextSize(level, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
    x = min(x, picture.shape[1] - width - 1)  # a spine near the right edge gets its names inside the film
    origin = (max(0, x), int(np.clip(y + height // 2, height, picture.shape[0] - 1)))
    cv2.putText(picture, level, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(picture, level, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, colour, thickness, cv2.LINE_AA)
