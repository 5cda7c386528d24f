"""The film's confident detections during a walk: which a chain position has claimed (its centroid
lies under the position's mask), the nearest unclaimed one to snap a predicted point to or ahead of a
walking end, and how many no final vertebra claimed."""

from __future__ import annotations

import numpy as np

from spinefm.pipeline.core.types import Detection, Instance, MaskCrop


class Claims:
    """The film's confident detections and which of them a position has claimed (centroid under its mask)."""

    def __init__(self, detections: list[Detection], min_score: float, threshold: float):
        self.threshold = threshold
        confident = [d for d in detections if d.score >= min_score]
        self.centroids = np.array([d.centroid for d in confident], dtype=np.float64).reshape(-1, 2)
        self.scores = np.array([d.score for d in confident], dtype=np.float64)
        self.detections = confident
        self.claimed = np.zeros(len(confident), bool)

    def claim(self, crop: MaskCrop, own: int | None = None) -> float:
        """Claim the detections whose centroid lies under the crop's binary mask, and detection `own`
        where the crop is its mask; their best score (0: none)."""
        inside = self.under(crop)
        if own is not None:
            inside[own] = True
        self.claimed |= inside
        return float(self.scores[inside].max()) if inside.any() else 0.0

    def index(self, detection: Detection) -> int | None:
        """The detection's index among the confident ones (None: not confident)."""
        return next((i for i, d in enumerate(self.detections) if d is detection), None)

    def under(self, crop: MaskCrop) -> np.ndarray:
        if not len(self.centroids) or crop.values.size == 0:
            return np.zeros(len(self.centroids), bool)
        cols, rows = np.round(self.centroids - np.asarray(crop.offset)).astype(int).T
        height, width = crop.shape
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        inside[inside] = crop.values[rows[inside], cols[inside]] > self.threshold
        return inside

    def nearest_unclaimed(self, point: np.ndarray, radius: float) -> int | None:
        """Index of the nearest unclaimed detection within `radius` of the point."""
        if not np.isfinite(point).all():
            return None
        distance = np.where(self.claimed, np.inf, np.linalg.norm(self.centroids - point, axis=1))
        return int(np.argmin(distance)) if len(distance) and distance.min() <= radius else None

    def nearest_ahead(self, end: np.ndarray, direction: np.ndarray, reach: float) -> int | None:
        """Index of the nearest unclaimed detection ahead of `end` (within 45 degrees of `direction`) within `reach`."""
        offsets = self.centroids - end
        distance = np.linalg.norm(offsets, axis=1)
        norm = np.linalg.norm(direction)
        if not len(offsets) or norm == 0:
            return None
        cosine = offsets @ direction / np.maximum(distance * norm, 1e-9)
        candidates = np.where(~self.claimed & (distance <= reach) & (cosine >= np.sqrt(0.5)), distance, np.inf)
        return int(np.argmin(candidates)) if np.isfinite(candidates).any() else None


def unclaimed_detections(claims: Claims, instances: list[Instance]) -> int:
    """Confident detections whose centroid lies under no final instance's mask."""
    covered = np.zeros(len(claims.centroids), bool)
    for instance in instances:
        covered |= claims.under(MaskCrop(instance.mask.astype(np.float32), instance.offset))
    return int((~covered).sum())
