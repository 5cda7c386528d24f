"""Repairs of a walked chain from the detector's evidence (pure geometry; the loop runs the models).

The walk prompts the segmenter at predicted points. Where predictions fell between two vertebrae,
masks are off-centre (each covering parts of two vertebrae) and the refined centroids stay there;
where a step went two vertebrae at once, one is missing. The detector has usually found those
vertebrae. So after the walk, every confident detection within the chain's extent that no position
is centred on (within `centred` spacings) re-prompts the segmenter at its centroid, and the new
masks are taken best detection first:

- a new mask that overlaps chain positions (shares more than `repair_overlap` of the smaller mask)
  replaces them when it agrees better (IoU) with the detection's own mask than each of them does;
- a new mask that overlaps none fills a gap (a vertebra stepped over).

The repaired chain is ordered along the spine again. Detections beyond the chain's ends are left
alone: the walk already went there or stopped for a reason.
"""

from __future__ import annotations

import numpy as np

from spinefm.data.masks import crop_containment
from spinefm.pipeline.geometry import spine_line
from spinefm.pipeline.types import MaskCrop


def uncentred(chain: np.ndarray, detections: np.ndarray, spacing: float, centred: float) -> list[int]:
    """Indices of the detections (M, 2) that no chain position (N, 2) lies within `centred` spacings
    of and that lie within the chain's extent along the spine."""
    if len(chain) < 2 or not len(detections) or spacing <= 0:
        return []
    distance = np.linalg.norm(detections[:, None, :] - chain[None, :, :], axis=2).min(axis=1) / spacing
    centre, direction = spine_line(chain)
    along, extent = (detections - centre) @ direction, (chain - centre) @ direction
    inside = (along >= extent.min()) & (along <= extent.max())
    return [int(i) for i in np.flatnonzero((distance > centred) & inside)]


def conflicts(crop: MaskCrop, masks: list[MaskCrop], threshold: float, max_share: float) -> list[int]:
    """Indices of the masks that share more than max_share of the smaller mask with the crop (an
    off-centre mask covers part of the vertebra a detection re-prompt finds whole)."""
    mine = crop.binary(threshold)
    return [
        i
        for i, other in enumerate(masks)
        if crop_containment(mine, crop.offset, other.binary(threshold), other.offset) > max_share
    ]
