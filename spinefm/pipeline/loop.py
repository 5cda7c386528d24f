"""The inductive loop: seeds from a detector, a walk up and down the spine to its hard stops, then one
decoding of the whole chain (docs in `spinefm.pipeline.decode`).

1. Detect; order the detections' centroids along their principal axis, top to bottom; the
   `num_seeds` consecutive ones with the highest mean score are the seeds.
2. Segment every seed (refined centroid: probability-weighted centre of its mask) and classify it.
3. Walk up from the top seed and down from the bottom one (`stepping`): predict the next centroid,
   snap it to a confident unclaimed detection nearby, segment a patch there and classify at the
   refined centroid, keeping every class probability. Soft evidence never stops a direction: it
   stops on a hard stop (border, empty mask, overlap, the step cap), or after `patience` doubtful
   steps in a row (background or this direction's end, no detection there) unless a confident
   unclaimed detection lies ahead (`lookahead` spacings).
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

import numpy as np

from spinefm.data.classes import end_calls
from spinefm.data.intensity import to_uint8
from spinefm.data.patches import patch_side
from spinefm.pipeline.claims import Claims, unclaimed_detections
from spinefm.pipeline.decode import decode_chain
from spinefm.pipeline.geometry import best_run, chain_spacing, order_along_spine
from spinefm.pipeline.lockstep import Walk, run_walks
from spinefm.pipeline.loop_config import LoopConfig
from spinefm.pipeline.postprocess import final_mask
from spinefm.pipeline.repair import repair_chain
from spinefm.pipeline.requests import Detect, Request, Segment, classify_positions
from spinefm.pipeline.roles import ROLES
from spinefm.pipeline.selection import select_instances
from spinefm.pipeline.stepping import Walker, walk_directions
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
    Predictor,
    Segmenter,
    Trace,
)


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
        claims = Claims(detections, config.snap_score, config.mask_threshold)
        seeds = yield from self._segment_seeds(film, [detections[i] for i in trace.seeds], claims, trace)
        if not seeds:
            trace.status, trace.stops = "no_seeds", {UP: "no_seeds", DOWN: "no_seeds"}
            return result
        if len(seeds) == 1:
            trace.stops = {UP: "one_seed", DOWN: "one_seed"}
            result.chain, result.instances = self._finish(seeds, view, claims, trace)
            return result
        centroids = [s.centroid for s in seeds]
        up = Walker(UP, centroids[::-1], seeds[0].probability)
        down = Walker(DOWN, centroids, seeds[-1].probability)
        classes = list(self.classifier.classes)
        landmarks = config.labels.chain_view(view, config.decode.l6_rate)
        calls = end_calls(classes, landmarks.top_end, landmarks.bottom_end)
        for walkers in ([up], [down]) if config.sequential else ([up, down],):
            yield from walk_directions(
                film,
                walkers,
                claims,
                trace,
                config,
                self.segmenter.patch,
                self.classifier.patch,
                classes,
                {UP: calls["top"], DOWN: calls["bottom"]},
            )
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
        self, film: np.ndarray, detections: list[Detection], claims: Claims, trace: Trace
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
            centres = trace.seed_centroids
            side = self._side(self.classifier, chain_spacing(centres) if len(centres) > 1 else spacing)
            yield from classify_positions(film, seeds, side)
        return seeds

    @staticmethod
    def _side(component, spacing: float) -> int:
        return patch_side(component.patch, spacing)

    def _finish(
        self, found: list[ChainPosition], view: str | None, claims: Claims, trace: Trace
    ) -> tuple[list[Instance | None], list[Instance]]:
        """Decode the chain and post-process every position: (the chain's instances, None where a mask
        came out empty; the kept ones, duplicates dropped, top to bottom with their levels)."""
        config = self.config
        classes = list(self.classifier.classes)
        unknown = np.full(len(classes), np.nan)
        trace.chain_probabilities = np.stack(
            [f.class_probabilities if f.class_probabilities is not None else unknown for f in found]
        )
        trace.chain_support = np.array([f.support for f in found])
        trace.chain_centroids = np.stack([f.centroid for f in found])
        trace.chain_sides = [f.side for f in found]
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
        probabilities = item.class_probabilities
        spine_class = None if probabilities is None else classes[int(np.argmax(probabilities))]
        return Instance(
            probability=final.probability,
            mask=final.mask,
            centroid=final.centroid,
            score=final.score,
            source=item.source,
            spine_class=spine_class,
            level=level,
        )
