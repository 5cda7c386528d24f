"""Repairs of a walked chain from the detector's evidence (pure geometry; the loop runs the models).

The walk prompts the segmenter at predicted points. Where a prediction fell between two vertebrae,
the mask is off-centre and the refined centroid stays there; where a step went two vertebrae at once,
one is missing. The detector has usually found those vertebrae. So after the walk, every confident
detection that no position is centred on (within `centred` spacings) re-prompts the segmenter at its
centroid:

- near a position (within `reach` spacings): the new mask replaces the position's when it agrees
  better with the detection's own mask (IoU) and overlaps neither neighbour;
- in a gap between two consecutive positions (a vertebra stepped over): the new position is inserted
  when it overlaps neither of them.

Detections beyond the chain's ends are left alone: the walk already went there or stopped for a reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinefm.data.masks import crop_iou
from spinefm.pipeline.types import MaskCrop


@dataclass
class Repair:
    """Re-prompt at detection `detection`: replace chain position `position`, or (insert) put a new
    position before it."""

    detection: int
    position: int
    insert: bool


def plan_repairs(
    chain: np.ndarray, detections: np.ndarray, scores: np.ndarray, spacing: float, centred: float, reach: float
) -> list[Repair]:
    """chain (N, 2) centroids top to bottom; detections (M, 2) confident detection centroids. At most
    one repair per position (the best-scoring detection) and per gap."""
    if len(chain) < 2 or not len(detections) or spacing <= 0:
        return []
    distance = np.linalg.norm(detections[:, None, :] - chain[None, :, :], axis=2) / spacing  # (M, N)
    planned: dict[tuple[int, bool], int] = {}
    for index in np.argsort(-scores, kind="stable"):
        nearest = int(np.argmin(distance[index]))
        if distance[index, nearest] <= centred:
            continue
        if distance[index, nearest] <= reach:
            key = (nearest, False)
        else:
            gap = _gap(chain, detections[index], spacing, reach)
            if gap is None:
                continue
            key = (gap, True)
        planned.setdefault(key, int(index))
    return [Repair(detection, position, insert) for (position, insert), detection in sorted(planned.items())]


def _gap(chain: np.ndarray, point: np.ndarray, spacing: float, reach: float) -> int | None:
    """The position `point` lies before, between two consecutive positions (projected onto the
    segment between them, inside its middle half, and within `reach` spacings of it); None: none."""
    for after in range(1, len(chain)):
        start, end = chain[after - 1], chain[after]
        segment = end - start
        length = float(segment @ segment)
        if length == 0:
            continue
        along = float((point - start) @ segment) / length
        foot = start + along * segment
        if 0.25 <= along <= 0.75 and np.linalg.norm(point - foot) <= reach * spacing:
            return after
    return None


def agreement(crop: MaskCrop, detection: MaskCrop, threshold: float) -> float:
    """IoU of a segmenter mask and a detection's mask, both binarised at `threshold`."""
    return crop_iou(crop.binary(threshold), crop.offset, detection.binary(threshold), detection.offset)


def overlaps(crop: MaskCrop, neighbours: list[MaskCrop], threshold: float, max_iou: float) -> bool:
    """Whether the mask overlaps any neighbour's by more than max_iou (the loop's overlap stop)."""
    return any(agreement(crop, other, threshold) > max_iou for other in neighbours)
