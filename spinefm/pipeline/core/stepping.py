"""The walk's stepping: each direction from its seed to a hard stop (a generator like the loop: it
yields its requests to the components and is sent their answers).

Each step predicts the next centroid from the direction's last three (a constant-velocity step while
fewer than three exist), snaps it to a confident detection no position has claimed within
`snap_radius` spacings, segments a patch there and classifies at the refined centroid. Soft
evidence never stops a direction: it stops on a hard stop (border, empty mask, overlap, the step
cap) or after `patience` doubtful steps in a row, unless a confident unclaimed detection lies ahead
(`lookahead` spacings). With `detector_masks`, a step snapped to a detection takes that detection's own
mask instead of prompting the segmenter. Directions that step together share one request per component
and step.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field

import numpy as np

from spinefm.data.classes import BACKGROUND
from spinefm.data.patches import patch_side
from spinefm.pipeline.core.claims import Claims
from spinefm.pipeline.core.geometry import chain_spacing, inside, mask_iou, mask_score
from spinefm.pipeline.core.loop_config import LoopConfig
from spinefm.pipeline.core.requests import Classify, Predict, Request, masks_at
from spinefm.pipeline.core.types import ChainPosition, MaskCrop, Step


@dataclass
class Walker:
    """One direction's state: its chain of centroids (walking end last), last mask, finds and stop."""

    direction: str
    chain: list[np.ndarray]
    start: MaskCrop  # the seed's mask at this end
    found: list[ChainPosition] = field(default_factory=list)
    steps: int = 0
    doubts: int = 0  # doubtful steps in a row
    end_called: bool = False  # the classifier called this direction's end class at some step
    jump: int | None = None  # the detection the next step goes to instead of the predicted point
    stop: str | None = None

    @property
    def previous(self) -> MaskCrop:
        return self.found[-1].probability if self.found else self.start

    @property
    def spacing(self) -> float:
        return chain_spacing(self.chain)

    def window(self) -> np.ndarray:
        return np.stack(self.chain[-3:])


def walk_directions(
    film: np.ndarray,
    walkers: list[Walker],
    claims: Claims,
    config: LoopConfig,
    segment_patch: Mapping,
    classify_patch: Mapping,
    classes: list[str],
    end_calls: Mapping[str, frozenset[str]],
    tally: Counter,
) -> Generator[Request, object, list[Step]]:
    """Step `walkers` together until each has stopped; returns every step as it ran (kept positions go
    to each walker's `found`). segment_patch / classify_patch: the components' patch settings;
    end_calls: per direction, the classes that call its end; tally: counts the masks by source."""
    height, width = film.shape
    taken = []
    while True:
        for walker in walkers:
            if walker.stop is None and walker.steps >= config.max_steps:
                walker.stop = "max_steps"
        active = [w for w in walkers if w.stop is None]
        if not active:
            return taken
        steps = []
        for walker, point in zip(active, (yield from _predict(active, width, height))):
            step = Step(walker.direction, walker.steps, walker.window(), point, "kept")
            snap, walker.jump = walker.jump, None
            if snap is None and config.snap_radius > 0:
                snap = claims.nearest_unclaimed(point, config.snap_radius * walker.spacing)
            if snap is not None:
                step.snapped = claims.centroids[snap].copy()
            walker.steps += 1
            taken.append(step)
            if inside(step.prompt, width, height, config.border_margin * walker.spacing):
                step.side = patch_side(segment_patch, walker.spacing)
                steps.append((walker, step, snap))
            else:
                _stop(walker, step, "border")
        if not steps:
            continue
        known = [_own_mask(walker, snap, claims, config) for walker, _, snap in steps]
        prompts = np.stack([s.prompt for _, s, _ in steps])
        crops = yield from masks_at(film, prompts, [s.side for _, s, _ in steps], known, tally)
        kept = []
        for (walker, step, snap), crop, mine in zip(steps, crops, known):
            step.refined = crop.weighted_centroid(config.mask_threshold)
            if step.refined is None:
                _stop(walker, step, "empty_mask")
                continue
            step.mask_score = mask_score(crop)
            step.iou = mask_iou(crop, walker.previous, config.mask_threshold)
            if step.iou > config.overlap_iou:
                _stop(walker, step, "overlap")
                continue
            kept.append((walker, step, crop, None if mine is None else snap))
        if not kept:
            continue
        centres = np.stack([s.refined for _, s, _, _ in kept])
        sides = tuple(patch_side(classify_patch, w.spacing) for w, *_ in kept)
        answers = yield Classify(film, centres, sides)
        for (walker, step, crop, own), probabilities, side in zip(kept, answers, sides):
            probabilities = np.asarray(probabilities, dtype=np.float64)
            _advance(walker, step, crop, own, probabilities, side, claims, config, classes, end_calls[walker.direction])


def _own_mask(walker: Walker, snap: int | None, claims: Claims, config: LoopConfig) -> MaskCrop | None:
    """With `detector_masks`, the snapped detection's own mask, unless it overlaps the previous position
    as the overlap stop counts (a detection astride two vertebrae): there the segmenter decides."""
    if not config.detector_masks or snap is None:
        return None
    mask = claims.detections[snap].probability
    return None if mask_iou(mask, walker.previous, config.mask_threshold) > config.overlap_iou else mask


def _advance(
    walker: Walker,
    step: Step,
    crop: MaskCrop,
    own: int | None,
    probabilities: np.ndarray,
    side: int,
    claims: Claims,
    config: LoopConfig,
    classes: list[str],
    end_classes: frozenset[str],
) -> None:
    """Add the step to its direction's chain, then stop the direction after `patience` doubtful steps.
    own: the detection whose mask `crop` is (None: the segmenter's)."""
    step.probabilities = dict(zip(classes, probabilities.tolist()))
    step.spine_class = classes[int(np.argmax(probabilities))]
    step.support = claims.claim(crop, own)
    walker.found.append(ChainPosition(crop, step.refined, walker.direction, probabilities, step.support, step, side))
    walker.chain.append(step.refined)
    end_call = step.spine_class in end_classes
    walker.end_called |= end_call
    doubtful = (end_call or step.spine_class == BACKGROUND) and step.support == 0.0
    walker.doubts = walker.doubts + 1 if doubtful else 0
    if walker.doubts < config.patience or _walk_on(walker, claims, config.lookahead):
        return
    _stop(walker, step, "end" if walker.end_called else "background")


def _walk_on(walker: Walker, claims: Claims, lookahead: float) -> bool:
    """After `patience` doubts: whether a confident unclaimed detection keeps the direction going.
    One ahead of the walking end: go on. One ahead of the last position before the doubts (the walk
    strayed from the spine): drop the doubtful positions ("rewound") and go on from there to it."""
    reach = lookahead * walker.spacing
    if reach <= 0:
        return False
    if claims.nearest_ahead(walker.chain[-1], walker.chain[-1] - walker.chain[-2], reach) is not None:
        return True
    good = len(walker.chain) - 1 - walker.doubts
    target = claims.nearest_ahead(walker.chain[good], walker.chain[good] - walker.chain[good - 1], reach)
    if target is None:
        return False
    for item in walker.found[-walker.doubts :]:
        item.step.outcome = "rewound"
    del walker.found[-walker.doubts :], walker.chain[-walker.doubts :]
    walker.doubts, walker.jump = 0, target
    return True


def _predict(walkers: list[Walker], width: int, height: int) -> Generator[Request, object, np.ndarray]:
    """Next centroid per walker: the predictor on three points, a constant-velocity step on two."""
    points = np.zeros((len(walkers), 2))
    full = [i for i, w in enumerate(walkers) if len(w.chain) >= 3]
    if full:
        windows = np.stack([walkers[i].window() for i in full])
        points[full] = yield Predict(windows, (width, height))
    for i, walker in enumerate(walkers):
        if len(walker.chain) < 3:
            points[i] = 2 * walker.chain[-1] - walker.chain[-2]
    return points


def _stop(walker: Walker, step: Step, reason: str) -> None:
    walker.stop = step.outcome = reason
