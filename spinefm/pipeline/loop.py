"""The inductive loop: seeds from a detector, a walk up and down the spine to its hard stops, then one
decoding of the whole chain (docs in `spinefm.pipeline.decode`).

1. Detect; order the detections' centroids along their principal axis, top to bottom; the
   `num_seeds` consecutive ones with the highest mean score are the seeds.
2. Segment every seed (refined centroid: probability-weighted centre of its mask) and classify it.
3. Walk up from the top seed and down from the bottom one: predict the next centroid (a
   constant-velocity step while fewer than three points exist), snap it to a confident detection
   that no position has claimed when one lies within `snap_radius` spacings, segment a patch there
   and classify at the refined centroid, keeping every class probability. Soft evidence never stops
   a direction: it stops on a hard stop (border, empty mask, overlap, the step cap), or after
   `patience` doubtful steps in a row (background or this direction's end, no detection there) unless a
   confident unclaimed detection lies ahead (`lookahead` spacings).
4. Repair the chain from the detector (`repair`): re-prompt the segmenter at every confident
   detection no position is centred on; the new mask replaces the off-centre positions it overlaps
   when it agrees better with the detection's mask, or fills a gap where a step went over a vertebra.
5. Decode the chain (`decode.decode_chain`): which positions are vertebrae of the labelled range,
   and their levels, from the class probabilities, the detector's support and the count prior.
6. Post-process the kept positions (smoothing, final threshold), drop duplicates one-to-one.

The loop is a generator (`InductiveLoop.walk`): it yields its requests to the components and is sent
their answers, so a runner can serve many films' requests with one batched call (`lockstep`). The two
directions are independent (each has its own window, previous mask and spacing), so they step
together: one request per component and step serves both (`LoopConfig.sequential`: one direction
after the other, as the original).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field

import numpy as np

from spinefm.data.intensity import to_uint8
from spinefm.data.patches import patch_side
from spinefm.models.spine_end import BACKGROUND, BOTTOM_END, TOP_END
from spinefm.pipeline.claims import Detections, unclaimed_detections
from spinefm.pipeline.decode import DecodeConfig, decode_chain
from spinefm.pipeline.geometry import best_run, chain_spacing, inside, mask_iou, mask_score, order_along_spine
from spinefm.pipeline.labels import LabelConfig
from spinefm.pipeline.lockstep import Walk, run_walks
from spinefm.pipeline.postprocess import final_mask
from spinefm.pipeline.repair import repair_chain
from spinefm.pipeline.requests import Classify, Detect, Predict, Request, Segment
from spinefm.pipeline.roles import ROLES
from spinefm.pipeline.selection import select_instances
from spinefm.pipeline.types import (
    DOWN,
    SEED,
    UP,
    ChainPosition,
    Classifier,
    Detection,
    Detector,
    Instance,
    LoopResult,
    MaskCrop,
    Predictor,
    Segmenter,
    Step,
    Trace,
)


@dataclass
class LoopConfig:
    """Every setting of the loop (SpineFM's defaults where it has them).

    num_seeds: consecutive detections the walk starts from. mask_threshold: probability binarising
    a new mask for the empty-mask stop, the overlap IoU, the refined centroid and which detections a
    position claims. overlap_iou: stop (and discard) when the new mask's IoU with the previous one
    exceeds it. max_steps: steps per direction. border_margin: predicted points must lie this many
    centroid spacings inside the image (negative: outside is allowed). classify_seeds: ask the end
    classifier about the seeds too. size_to_spacing: with a single seed, centroid spacing = this x
    sqrt(its detected area), for spacing-sized patches.
    patience: doubtful steps in a row (called background or this direction's end class, no confident
    detection under the mask) that end a direction; lookahead: a confident unclaimed detection within
    this many spacings ahead of the walking end keeps it going (0: never). snap_radius: a predicted
    point moves to the centroid of a confident unclaimed detection within this many spacings (0: never); snap_score: the
    detection score that counts as confident (for snapping, lookahead, repairs and a step's support).
    repair_centred (spacings; 0: no repairs): after the walk, a confident detection within the
    chain's extent with no position this close re-prompts the segmenter; the new mask replaces the
    positions it overlaps (sharing more than repair_overlap of the smaller mask) if it agrees better
    with the detection's mask, or fills a gap (`repair`).
    final_threshold, smooth_sigma (Gaussian on the probabilities, px; 0: none), opening_radius
    (binary opening, px; 0: none): the final masks. duplicate_iou: of two final masks overlapping
    more, the lower-scoring one is dropped. crop_floor: instance crops keep the box of pixels with
    probability above it (and the mask). probability_dtype: how instances store probabilities.
    decode: `decode.DecodeConfig`; labels: the view's ends, labelled range and anchors.
    """

    num_seeds: int = 3
    mask_threshold: float = 0.9
    overlap_iou: float = 0.1
    max_steps: int = 30
    border_margin: float = 0.0
    classify_seeds: bool = True
    size_to_spacing: float = 1.1
    patience: int = 3
    lookahead: float = 2.5
    snap_radius: float = 0.5
    snap_score: float = 0.7
    repair_centred: float = 0.25
    repair_overlap: float = 0.2
    final_threshold: float = 0.9
    smooth_sigma: float = 0.0
    opening_radius: int = 0
    duplicate_iou: float = 0.5
    crop_floor: float = 0.1
    probability_dtype: str = "float16"
    sequential: bool = False
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)

    def __post_init__(self):
        if isinstance(self.labels, Mapping):
            self.labels = LabelConfig(**self.labels)
        if isinstance(self.decode, Mapping):
            self.decode = DecodeConfig(**self.decode)
        if self.repair_centred < 0:
            raise ValueError(f"repair_centred must not be negative, not {self.repair_centred}")
        if self.num_seeds < 1 or self.max_steps < 0 or self.patience < 1:
            raise ValueError("num_seeds and patience must be at least 1 and max_steps at least 0")
        for name in (
            "mask_threshold",
            "overlap_iou",
            "final_threshold",
            "duplicate_iou",
            "crop_floor",
            "snap_score",
            "repair_overlap",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], not {getattr(self, name)}")


@dataclass
class _Walker:
    """One direction's state: its chain of centroids (walking end last), last mask, finds and stop."""

    direction: str
    chain: list[np.ndarray]
    start: MaskCrop  # the seed's mask at this end
    found: list[ChainPosition] = field(default_factory=list)
    steps: int = 0
    doubts: int = 0  # doubtful steps in a row
    end_called: bool = False  # the classifier called this direction's end class at some step
    jump: np.ndarray | None = None  # where the next step is prompted instead of the predicted point
    stop: str | None = None

    @property
    def previous(self) -> MaskCrop:
        return self.found[-1].probability if self.found else self.start

    @property
    def spacing(self) -> float:
        return chain_spacing(self.chain)

    def window(self) -> np.ndarray:
        return np.stack(self.chain[-3:])


class InductiveLoop:
    """Runs the loop on one film at a time; holds no per-film state between runs."""

    def __init__(
        self,
        detector: Detector,
        segmenter: Segmenter,
        predictor: Predictor,
        classifier: Classifier,
        config: LoopConfig | Mapping | None = None,
    ):
        self.detector = detector
        self.segmenter = segmenter
        self.predictor = predictor
        self.classifier = classifier
        self.config = config if isinstance(config, LoopConfig) else LoopConfig(**(config or {}))

    @property
    def components(self) -> dict[str, object]:
        """Role -> component (the roles `requests` names)."""
        return dict(zip(ROLES, (self.detector, self.segmenter, self.predictor, self.classifier)))

    def run(
        self,
        image: np.ndarray,
        view: str | None = None,
        image_id: str | None = None,
        detections: list[Detection] | None = None,
    ) -> LoopResult:
        """image: the radiograph as loaded (`ImageRecord.load_image()`, any bit depth); the models see it
        through `to_uint8`, as in training. view: the film's view (for end levels and labels).
        detections: the detector's, when already known (the detector is then not asked)."""
        return run_walks([self.walk(self.film(image, image_id), view, image_id, detections)], self.components)[0]

    @staticmethod
    def film(image: np.ndarray, image_id: str | None = None) -> np.ndarray:
        """The uint8 2-D film every component sees (ValueError for anything that is not 2-D)."""
        film = to_uint8(np.asarray(image))
        if film.ndim != 2:
            raise ValueError(f"{image_id or 'image'}: expected a 2-D grey image, got shape {film.shape}")
        return film

    def walk(
        self,
        film: np.ndarray,
        view: str | None = None,
        image_id: str | None = None,
        detections: list[Detection] | None = None,
    ) -> Walk:
        """The loop on a uint8 film as a generator: it yields its requests to the components and is
        sent their answers (`lockstep.run_walks` serves many films' walks together); returns the result."""
        config = self.config
        if detections is None:
            detections = yield Detect(film)
        trace = Trace(
            detection_centroids=np.array([d.centroid for d in detections], dtype=np.float64).reshape(-1, 2),
            detection_scores=np.array([d.score for d in detections], dtype=np.float64),
            classes=list(self.classifier.classes),
        )
        result = LoopResult(image_id, film.shape, view, [], trace)
        if not detections:
            trace.status, trace.stops = "no_detections", {UP: "no_seeds", DOWN: "no_seeds"}
            return result
        trace.order = order_along_spine(trace.detection_centroids).tolist()
        start = best_run(trace.detection_scores[trace.order], config.num_seeds)
        trace.seeds = trace.order[start : start + config.num_seeds]
        claims = Detections(detections, config.snap_score, config.mask_threshold)
        seeds = yield from self._segment_seeds(film, [detections[i] for i in trace.seeds], claims, trace)
        if not seeds:
            trace.status, trace.stops = "no_seeds", {UP: "no_seeds", DOWN: "no_seeds"}
            return result
        if len(seeds) == 1:
            trace.stops = {UP: "one_seed", DOWN: "one_seed"}
            result.chain, result.instances = self._finish(seeds, view, claims, trace)
            return result
        centroids = [s.centroid for s in seeds]
        up = _Walker(UP, centroids[::-1], seeds[0].probability)
        down = _Walker(DOWN, centroids, seeds[-1].probability)
        for walkers in ([up], [down]) if config.sequential else ([up, down],):
            yield from self._walk_together(film, walkers, claims, trace)
        trace.stops = {UP: up.stop, DOWN: down.stop}
        found = yield from repair_chain(
            film,
            up.found[::-1] + seeds + down.found,
            detections,
            claims,
            trace,
            config,
            self.segmenter.patch,
            self.classifier.patch,
        )
        result.chain, result.instances = self._finish(found, view, claims, trace)
        return result

    def _segment_seeds(
        self, film: np.ndarray, detections: list[Detection], claims: Detections, trace: Trace
    ) -> Generator[Request, object, list[ChainPosition]]:
        """Segment the seeds in one call; seeds whose mask is empty are dropped."""
        points = np.stack([d.centroid for d in detections])
        spacing = (
            chain_spacing(list(points))
            if len(points) > 1
            else self.config.size_to_spacing * np.sqrt(detections[0].area)
        )
        crops = yield Segment(film, points, (self._side(self.segmenter, spacing),) * len(points))
        seeds = []
        for crop, detection in zip(crops, detections):
            centroid = crop.weighted_centroid(self.config.mask_threshold)
            if centroid is not None:
                seeds.append(ChainPosition(crop, centroid, SEED, None, max(claims.claim(crop), detection.score)))
        trace.seed_centroids = [s.centroid for s in seeds]
        if seeds and self.config.classify_seeds:
            centres = np.stack(trace.seed_centroids)
            side = self._side(self.classifier, chain_spacing(list(centres)) if len(centres) > 1 else spacing)
            for seed, probabilities in zip(seeds, (yield Classify(film, centres, (side,) * len(seeds)))):
                seed.probabilities = np.asarray(probabilities, dtype=np.float64)
        return seeds

    def _walk_together(
        self, film: np.ndarray, walkers: list[_Walker], claims: Detections, trace: Trace
    ) -> Generator[Request, object, None]:
        config = self.config
        height, width = film.shape
        while True:
            for walker in walkers:
                if walker.stop is None and walker.steps >= config.max_steps:
                    walker.stop = "max_steps"
            active = [w for w in walkers if w.stop is None]
            if not active:
                return
            steps = []
            for walker, point in zip(active, (yield from self._predict(active, width, height))):
                step = Step(walker.direction, walker.steps, walker.window(), point, "kept")
                if walker.jump is not None:
                    step.snapped, walker.jump = walker.jump, None
                elif (
                    config.snap_radius > 0
                    and (snap := claims.nearest_unclaimed(point, config.snap_radius * walker.spacing)) is not None
                ):
                    step.snapped = claims.centroids[snap].copy()
                walker.steps += 1
                trace.steps.append(step)
                if inside(step.prompt, width, height, config.border_margin * walker.spacing):
                    step.side = self._side(self.segmenter, walker.spacing)
                    steps.append((walker, step))
                else:
                    _stop(walker, step, "border")
            if not steps:
                continue
            crops = yield Segment(film, np.stack([s.prompt for _, s in steps]), tuple(s.side for _, s in steps))
            kept = []
            for (walker, step), crop in zip(steps, crops):
                step.refined = crop.weighted_centroid(config.mask_threshold)
                if step.refined is None:
                    _stop(walker, step, "empty_mask")
                    continue
                step.mask_score = mask_score(crop)
                step.iou = mask_iou(crop, walker.previous, config.mask_threshold)
                if step.iou > config.overlap_iou:
                    _stop(walker, step, "overlap")
                    continue
                kept.append((walker, step, crop))
            if not kept:
                continue
            centres = np.stack([s.refined for _, s, _ in kept])
            answers = yield Classify(film, centres, tuple(self._side(self.classifier, w.spacing) for w, _, _ in kept))
            for (walker, step, crop), probabilities in zip(kept, answers):
                self._advance(walker, step, crop, np.asarray(probabilities, dtype=np.float64), claims)

    def _advance(
        self, walker: _Walker, step: Step, crop: MaskCrop, probabilities: np.ndarray, claims: Detections
    ) -> None:
        """Add the step to its direction's chain, then stop the direction after `patience` doubtful steps."""
        config, classes = self.config, list(self.classifier.classes)
        step.probabilities = dict(zip(classes, probabilities.tolist()))
        step.spine_class = classes[int(np.argmax(probabilities))]
        step.support = claims.claim(crop)
        walker.found.append(ChainPosition(crop, step.refined, walker.direction, probabilities, step.support, step))
        walker.chain.append(step.refined)
        end_call = step.spine_class == (TOP_END if walker.direction == UP else BOTTOM_END)
        walker.end_called |= end_call
        doubtful = (end_call or step.spine_class == BACKGROUND) and step.support == 0.0
        walker.doubts = walker.doubts + 1 if doubtful else 0
        if walker.doubts < config.patience or self._walk_on(walker, claims):
            return
        _stop(walker, step, "end" if walker.end_called else "background")

    def _walk_on(self, walker: _Walker, claims: Detections) -> bool:
        """After `patience` doubts: whether a confident unclaimed detection keeps the direction going.
        One ahead of the walking end: go on. One ahead of the last position before the doubts (the walk
        strayed from the spine): drop the doubtful positions ("rewound") and go on from there to it."""
        reach = self.config.lookahead * walker.spacing
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
        walker.doubts, walker.jump = 0, claims.centroids[target].copy()
        return True

    def _predict(self, walkers: list[_Walker], width: int, height: int) -> Generator[Request, object, np.ndarray]:
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

    @staticmethod
    def _side(component, spacing: float) -> int:
        return patch_side(component.patch, spacing)

    def _finish(
        self, found: list[ChainPosition], view: str | None, claims: Detections, trace: Trace
    ) -> tuple[list[Instance | None], list[Instance]]:
        """Decode the chain and post-process every position: (the chain's instances, None where a mask
        came out empty; the kept ones, duplicates dropped, top to bottom with their levels)."""
        config = self.config
        classes = list(self.classifier.classes)
        unknown = np.full(len(classes), np.nan)
        trace.chain_probabilities = np.stack(
            [f.probabilities if f.probabilities is not None else unknown for f in found]
        )
        trace.chain_support = np.array([f.support for f in found])
        trace.chain_centroids = np.stack([f.centroid for f in found])
        trace.chain_view = config.labels.chain_view(view, config.decode.l6_rate)
        trace.class_prior = self.classifier.class_prior
        decoded = decode_chain(
            trace.chain_probabilities,
            classes,
            trace.chain_support,
            trace.chain_view,
            config.decode,
            trace.class_prior,
            trace.chain_centroids,
        )
        chain = [self._final_instance(item, level, classes) for item, level in zip(found, decoded.levels)]
        instances = select_instances(chain, decoded.kept, config.duplicate_iou, trace)
        trace.chain_levels, trace.chain_kept = decoded.levels, decoded.kept
        trace.unclaimed = unclaimed_detections(claims, instances)
        return chain, instances

    def _final_instance(self, item: ChainPosition, level: str | None, classes: list[str]) -> Instance | None:
        config = self.config
        final = final_mask(
            item.probability,
            config.final_threshold,
            config.smooth_sigma,
            config.opening_radius,
            config.crop_floor,
            config.probability_dtype,
        )
        if final is None:
            return None
        spine_class = None if item.probabilities is None else classes[int(np.argmax(item.probabilities))]
        return Instance(
            probability=final.probability,
            mask=final.mask,
            centroid=final.centroid,
            score=final.score,
            source=item.source,
            spine_class=spine_class,
            level=level,
        )


def _stop(walker: _Walker, step: Step, reason: str) -> None:
    walker.stop = step.outcome = reason
