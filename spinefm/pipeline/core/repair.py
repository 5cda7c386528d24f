"""Repairs of a walked chain from the detector's evidence (a generator like the loop: it yields the
re-prompts as requests and is sent the answers).

The walk prompts the segmenter at predicted points. Where predictions fell between two vertebrae,
masks are off-centre (each covering parts of two vertebrae) and the refined centroids stay there;
where a step went two vertebrae at once, one is missing. The detector has usually found those
vertebrae. So after the walk, every confident detection within the chain's extent that no position
is centred on (within `centred` spacings) re-prompts the segmenter at its centroid, and the new
masks are taken best detection first:

- a new mask that overlaps chain positions (shares more than `repair_overlap` of the smaller mask)
  replaces them when it agrees better (IoU) with the detection's own mask than each of them does;
- a new mask that overlaps none fills a gap (a vertebra stepped over).

With `detector_masks`, a detection whose own mask overlaps no chain position fills the gap with that
mask (no re-prompt); where it overlaps one, the segmenter is re-prompted as above.

The same holds past the chain's ends for the detections that continue it: each within
`repair_reach` spacings of a chain position, of a detection chosen within the extent, or of the
previous one chosen past that end. A walk that strayed from the spine and stopped on doubtful
calls with confident detections further on (beyond its lookahead) would otherwise leave those
vertebrae out; its last positions are off the spine, so the reach is not measured from them alone.
Isolated detections past the ends are left alone.

The repaired chain is ordered along the spine again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Mapping

import numpy as np

from spinefm.data.masks import crop_containment
from spinefm.data.patches import patch_side
from spinefm.pipeline.core.claims import Claims
from spinefm.pipeline.core.geometry import chain_spacing, mask_iou, order_along_spine, spine_line
from spinefm.pipeline.core.loop_config import LoopConfig
from spinefm.pipeline.core.requests import Request, classify_positions, masks_at
from spinefm.pipeline.core.types import REPAIR, ChainPosition, Detection, MaskCrop


def repair_chain(
    film: np.ndarray,
    found: list[ChainPosition],
    detections: list[Detection],
    claims: Claims,
    config: LoopConfig,
    segment_patch: Mapping,
    classify_patch: Mapping,
    tally: Counter,
) -> Generator[Request, object, tuple[list[ChainPosition], dict[str, int]]]:
    """(the chain repaired from confident detections no position is centred on; how many were
    "replaced", "inserted" and "rejected", {} where none was re-prompted). Patches as the segmenter's
    and classifier's; tally counts the new masks by source."""
    confident = sorted((d for d in detections if d.score >= config.snap_score), key=lambda d: -d.score)
    if config.repair_centred <= 0 or len(found) < 2 or not confident:
        return found, {}
    centres = np.stack([f.centroid for f in found])
    spacing = chain_spacing(list(centres))
    points = np.stack([d.centroid for d in confident])
    chosen = [confident[i] for i in uncentred(centres, points, spacing, config.repair_centred, config.repair_reach)]
    if not chosen:
        return found, {}
    side = patch_side(segment_patch, spacing)
    masks = [f.probability for f in found]
    known = [
        d.probability
        if config.detector_masks and not conflicts(d.probability, masks, config.mask_threshold, config.repair_overlap)
        else None
        for d in chosen
    ]
    crops = yield from masks_at(film, np.stack([d.centroid for d in chosen]), (side,) * len(chosen), known, tally)
    threshold, chain, counts = config.mask_threshold, list(found), {"replaced": 0, "inserted": 0, "rejected": 0}
    for detection, crop, mine in zip(chosen, crops, known):  # best detection first
        centroid = crop.weighted_centroid(threshold)
        overlapped = conflicts(crop, [f.probability for f in chain], threshold, config.repair_overlap)
        better = mask_iou(crop, detection.probability, threshold)
        if (
            centroid is None
            or (overlapped and crop is mine)  # a gap another detection filled first
            or any(mask_iou(chain[i].probability, detection.probability, threshold) >= better for i in overlapped)
        ):
            counts["rejected"] += 1
            continue
        counts["replaced" if overlapped else "inserted"] += 1
        chain = [f for i, f in enumerate(chain) if i not in overlapped]
        own = claims.index(detection) if crop is mine else None
        chain.append(ChainPosition(crop, centroid, REPAIR, None, claims.claim(crop, own)))
    new = [f for f in chain if f.class_probabilities is None and f.source == REPAIR]
    if not new:
        return found, counts
    yield from classify_positions(film, new, patch_side(classify_patch, spacing))
    return [chain[i] for i in order_along_spine(np.stack([f.centroid for f in chain]))], counts


def uncentred(
    chain: np.ndarray, detections: np.ndarray, spacing: float, centred: float, reach: float = 0.0
) -> list[int]:
    """Indices of the detections (M, 2) that no chain position (N, 2) lies within `centred` spacings
    of and that lie within the chain's extent along the spine, or continue it past an end: each
    within `reach` spacings of a chain position or of a detection chosen before it."""
    if len(chain) < 2 or not len(detections) or spacing <= 0:
        return []
    distance = np.linalg.norm(detections[:, None, :] - chain[None, :, :], axis=2).min(axis=1) / spacing
    centre, direction = spine_line(chain)
    along, extent = (detections - centre) @ direction, (chain - centre) @ direction
    top, bottom = int(extent.argmin()), int(extent.argmax())
    chosen = (along >= extent[top]) & (along <= extent[bottom])
    for end, past in ((top, along < extent[top]), (bottom, along > extent[bottom])):
        # reached from any position or chosen detection, not only from the end: where the walk strayed
        # sideways before it stopped, its last position is off the spine
        reached = [*chain, *detections[chosen]]
        for i in sorted(np.flatnonzero(past), key=lambda i: abs(along[i] - extent[end])):
            if np.linalg.norm(np.asarray(reached) - detections[i], axis=1).min() > reach * spacing:
                break
            chosen[i] = True
            reached.append(detections[i])
    return [int(i) for i in np.flatnonzero((distance > centred) & chosen)]


def conflicts(crop: MaskCrop, masks: list[MaskCrop], threshold: float, max_share: float) -> list[int]:
    """Indices of the masks that share more than max_share of the smaller mask with the crop (an
    off-centre mask covers part of the vertebra a detection re-prompt finds whole)."""
    mine = crop.binary(threshold)
    return [
        i
        for i, other in enumerate(masks)
        if crop_containment(mine, crop.offset, other.binary(threshold), other.offset) > max_share
    ]
