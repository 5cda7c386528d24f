"""What the networks see of a film, cut the same way in training and inference: the detector's
film scaled to a long side, and square patches around a point (Med-SA, spine-end classifier),
cropped exactly (integer offsets, zero fill outside the image)."""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from spinefm.data.intensity import to_uint8

PATCH_MODES = ("fixed", "spacing")


def scale_image(pixels: np.ndarray, image_size: int) -> np.ndarray:
    """The uint8 film resized so its long side is `image_size` (what the detector sees)."""
    height, width = pixels.shape
    scale = image_size / max(height, width)
    shape = (max(1, round(height * scale)), max(1, round(width * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(to_uint8(pixels), shape[::-1], interpolation=interpolation)


def patch_origin(center_xy, side: int) -> tuple[int, int]:
    """Top-left pixel (x0, y0) of the side x side patch whose centre is nearest `center_xy`."""
    return int(np.floor(center_xy[0] - (side - 1) / 2 + 0.5)), int(np.floor(center_xy[1] - (side - 1) / 2 + 0.5))


def crop_patch(image: np.ndarray, origin: tuple[int, int], side: int) -> np.ndarray:
    """image[y0:y0+side, x0:x0+side], with zeros where the patch leaves the image."""
    x0, y0 = origin
    patch = np.zeros((side, side), dtype=image.dtype)
    height, width = image.shape[:2]
    ya, yb, xa, xb = max(y0, 0), min(y0 + side, height), max(x0, 0), min(x0 + side, width)
    if ya < yb and xa < xb:
        patch[ya - y0 : yb - y0, xa - x0 : xb - x0] = image[ya:yb, xa:xb]
    return patch


def resize_square(patch: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    if patch.shape[0] == size and patch.shape[1] == size:
        return patch
    shrinking = patch.shape[0] > size
    interpolation = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return cv2.resize(patch, (size, size), interpolation=interpolation)


def classifier_patch(image8: np.ndarray, center_xy, side: int, input_size: int) -> np.ndarray:
    """The uint8 input_size x input_size patch the classifier sees around a point (zeros off the image);
    image8 is the film through `spinefm.data.intensity.to_uint8`, the model input is patch / 255."""
    return resize_square(crop_patch(image8, patch_origin(center_xy, side), side), input_size)


def median_spacing(record) -> float | None:
    """Median distance between consecutive centroids (None with fewer than two vertebrae)."""
    if len(record.vertebrae) < 2:
        return None
    centroids = np.stack([v.centroid() for v in record.vertebrae])
    return float(np.median(np.linalg.norm(np.diff(centroids, axis=0), axis=1)))


def patch_side(patch: Mapping, spacing: float | None) -> int | None:
    """Side in original pixels from the patch settings {mode, side_px, spacing_factor}: `side_px`
    (fixed), or `spacing_factor` x the median centroid spacing (spacing; None when unknown)."""
    if patch["mode"] not in PATCH_MODES:
        raise ValueError(f"patch.mode must be one of {PATCH_MODES}, not {patch['mode']!r}")
    if patch["mode"] == "fixed":
        return int(patch["side_px"])
    return None if spacing is None else max(1, int(round(patch["spacing_factor"] * spacing)))
