"""The inductive loop: seeds from a detector, a walk up and down the spine to its hard stops, then one
decoding of the whole chain (docs in `spinefm.pipeline.core.decode`).

1. Detect; order the detections' centroids along their principal axis, top to bottom; the
   `num_seeds` consecutive ones with the highest mean score are the seeds.
2. Segment every seed (refined centroid: probability-weighted centre of its mask) and classify it.
3. Walk up from the top seed and down from the bottom one (`stepping`): predict the next centroid,
   snap it to a confident unclaimed detection nearby, segment a patch there and classify at the
   refined centroid, keeping every class probability (with `detector_masks`, a seed or step on a
   confident detection takes the detection's own mask instead of the segmenter's). Soft evidence
   never stops a direction: it stops on a hard stop (border, empty mask, overlap, the step cap), or
   after `patience` doubtful steps in a row (background or this direction's end, no detection there)
   unless a confident unclaimed detection lies ahead (`lookahead` spacings).
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

from collections import Counter
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from spinefm.data.classes import end_calls
from spinefm.data.intensity import to_uint8
from spinefm.data.level_rows import read_rows
from spinefm.data.patches import patch_side
from spinefm.pipeline.core.claims import Claims, unclaimed_detections
from spinefm.pipeline.core.decode import ChainRecord, Decoded, decode_chain
from spinefm.pipeline.core.geometry import best_run, chain_spacing, order_along_spine
from spinefm.pipeline.core.lockstep import Walk, run_walks
from spinefm.pipeline.core.loop_config import LoopConfig
from spinefm.pipeline.core.postprocess import final_mask
from spinefm.pipeline.core.repair import repair_chain
from spinefm.pipeline.core.requests import Detect, MapLevels, Request, classify_positions, masks_at
from spinefm.pipeline.core.selection import select_instances
from spinefm.pipeline.core.stepping import Walker, walk_directions
from spinefm.pipeline.core.types import (
    DOWN,
    ROLES,
    SEED,
    UP,
    ChainPosition,
    Classifier,
    Detection,
    Detector,
    Instance,
    LevelMapper,
    LoopResult,
    Predictor,
    Segmenter,
    Step,
    Trace,
)


@dataclass(frozen=True)
class Walked:
    """What seeding, walking and repairing returned: the film's status, each direction's stop, the
    detections' order along the spine and the seeds among them, the seeds' refined centroids, the
    steps as they ran, the chain's positions top to bottom, the repair counts and the masks by source."""

    status: str
    stops: dict[str, str]
    order: list[int] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    seed_centroids: list[np.ndarray] = field(default_factory=list)
    claims: Claims | None = None
    positions: list[ChainPosition] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    repairs: dict[str, int] = field(default_factory=dict)
    masks: Counter = field(default_factory=Counter)


@dataclass(frozen=True)
class Finished:
    """What decoding and post-processing returned (empty where there was no chain)."""

    record: ChainRecord | None = None
    sides: list[int | None] = field(default_factory=list)
    decoded: Decoded | None = None
    chain: list[Instance | None] = field(default_factory=list)
    instances: list[Instance] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    unclaimed: int = 0

    def trace_fields(self) -> dict:
        """The trace's chain entries: the decoder's input and output, and what was dropped."""
        if self.record is None:
            return {}
        r = self.record
        return {
            "chain_probabilities": r.probabilities,
            "chain_support": r.support,
            "chain_centroids": r.centroids,
            "chain_sides": self.sides,
            "chain_view": r.view,
            "class_prior": r.class_prior,
            "chain_level_map": r.level_map,
            "level_map_names": r.level_names,
            "chain_levels": self.decoded.levels,
            "chain_kept": self.decoded.kept,
            "dropped": self.dropped,
            "unclaimed": self.unclaimed,
        }


class InductiveLoop:
    """Runs the loop on one film at a time; holds no per-film state between runs."""

    def __init__(
        self,
        detector: Detector,
        segmenter: Segmenter,
        predictor: Predictor,
        classifier: Classifier,
        config: LoopConfig | Mapping | None = None,
        level_mapper: LevelMapper | None = None,
    ):
        self.detector = detector
        self.segmenter = segmenter
        self.predictor = predictor
        self.classifier = classifier
        self.level_mapper = level_mapper
        self.config = config if isinstance(config, LoopConfig) else LoopConfig(**(config or {}))

    @property
    def components(self) -> dict[str, object]:
        """Role -> component (the roles `requests` names; the level mapper where there is one)."""
        components = dict(zip(ROLES, (self.detector, self.segmenter, self.predictor, self.classifier)))
        return components if self.level_mapper is None else {**components, "level_mapper": self.level_mapper}

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
        if detections is None:
            detections = yield Detect(film)
        level_map = (yield MapLevels(film)) if self.level_mapper is not None else None
        walked = yield from self._walk_chain(film, view, detections)
        finished = (
            self._finish(walked.positions, view, walked.claims, level_map, film.shape[0])
            if walked.positions
            else Finished()
        )
        trace = Trace(
            status=walked.status,
            detection_centroids=np.array([d.centroid for d in detections], dtype=np.float64).reshape(-1, 2),
            detection_scores=np.array([d.score for d in detections], dtype=np.float64),
            classes=list(self.classifier.classes),
            order=walked.order,
            seeds=walked.seeds,
            seed_centroids=walked.seed_centroids,
            steps=walked.steps,
            stops=walked.stops,
            **finished.trace_fields(),
            repairs=walked.repairs,
            masks=dict(walked.masks),
        )
        return LoopResult(image_id, film.shape, view, finished.instances, trace, finished.chain)

    def _walk_chain(
        self, film: np.ndarray, view: str | None, detections: list[Detection]
    ) -> Generator[Request, object, Walked]:
        """Seeds, the walk up and down from them, and the repairs: the chain's positions top to bottom."""
        config = self.config
        if not detections:
            return Walked("no_detections", {UP: "no_seeds", DOWN: "no_seeds"})
        order = order_along_spine(np.stack([d.centroid for d in detections])).tolist()
        start = best_run(np.array([detections[i].score for i in order], dtype=np.float64), config.num_seeds)
        seeds = order[start : start + config.num_seeds]
        claims, tally = Claims(detections, config.snap_score, config.mask_threshold), Counter()
        positions = yield from self._segment_seeds(film, [detections[i] for i in seeds], claims, tally)
        seeded = {
            "order": order,
            "seeds": seeds,
            "seed_centroids": [p.centroid for p in positions],
            "claims": claims,
            "masks": tally,
        }
        if not positions:
            return Walked("no_seeds", {UP: "no_seeds", DOWN: "no_seeds"}, **seeded)
        if len(positions) == 1:
            return Walked("ok", {UP: "one_seed", DOWN: "one_seed"}, **seeded, positions=positions)
        centroids = [p.centroid for p in positions]
        up = Walker(UP, centroids[::-1], positions[0].probability)
        down = Walker(DOWN, centroids, positions[-1].probability)
        classes = list(self.classifier.classes)
        landmarks = config.labels.chain_view(view, config.decode.l6_rate)
        calls = end_calls(classes, landmarks.top_end, landmarks.bottom_end)
        steps = []
        for walkers in ([up], [down]) if config.sequential else ([up, down],):
            steps += yield from walk_directions(
                film,
                walkers,
                claims,
                config,
                self.segmenter.patch,
                self.classifier.patch,
                classes,
                {UP: calls["top"], DOWN: calls["bottom"]},
                tally,
            )
        chain, repairs = yield from repair_chain(
            film,
            up.found[::-1] + positions + down.found,
            detections,
            claims,
            config,
            self.segmenter.patch,
            self.classifier.patch,
            tally,
        )
        return Walked("ok", {UP: up.stop, DOWN: down.stop}, **seeded, positions=chain, steps=steps, repairs=repairs)

    def _segment_seeds(
        self, film: np.ndarray, detections: list[Detection], claims: Claims, tally: Counter
    ) -> Generator[Request, object, list[ChainPosition]]:
        """Segment the seeds in one call (with `detector_masks`, the confident ones keep their own
        masks); seeds whose mask is empty are dropped."""
        points = np.stack([d.centroid for d in detections])
        spacing = (
            chain_spacing(list(points))
            if len(points) > 1
            else self.config.size_to_spacing * np.sqrt(detections[0].area)
        )
        own = [claims.index(d) if self.config.detector_masks else None for d in detections]
        known = [None if i is None else claims.detections[i].probability for i in own]
        crops = yield from masks_at(film, points, (self._side(self.segmenter, spacing),) * len(points), known, tally)
        seeds = []
        for crop, detection, i in zip(crops, detections, own):
            centroid = crop.weighted_centroid(self.config.mask_threshold)
            if centroid is not None:
                seeds.append(ChainPosition(crop, centroid, SEED, None, max(claims.claim(crop, i), detection.score)))
        if seeds and self.config.classify_seeds:
            centres = [s.centroid for s in seeds]
            side = self._side(self.classifier, chain_spacing(centres) if len(centres) > 1 else spacing)
            yield from classify_positions(film, seeds, side)
        return seeds

    @staticmethod
    def _side(component, spacing: float) -> int:
        return patch_side(component.patch, spacing)

    def _finish(
        self,
        found: list[ChainPosition],
        view: str | None,
        claims: Claims,
        level_map: np.ndarray | None = None,
        height: int = 0,
    ) -> Finished:
        """Decode the chain and post-process every position: its instances (None where a mask came out
        empty) and the kept ones, duplicates dropped, top to bottom with their levels. level_map: the
        film's (`height` pixels high), read at each position's row."""
        config = self.config
        classes = list(self.classifier.classes)
        unknown = np.full(len(classes), np.nan)
        centroids = np.stack([f.centroid for f in found])
        record = ChainRecord(
            probabilities=np.stack(
                [f.class_probabilities if f.class_probabilities is not None else unknown for f in found]
            ),
            classes=classes,
            support=np.array([f.support for f in found]),
            view=config.labels.chain_view(view, config.decode.l6_rate),
            class_prior=self.classifier.class_prior,
            centroids=centroids,
            level_map=None if level_map is None else read_rows(level_map, centroids[:, 1], height),
            level_names=None if level_map is None else list(self.level_mapper.names),
        )
        decoded = decode_chain(record, config.decode)
        chain = [self._final_instance(item, level, classes) for item, level in zip(found, decoded.levels)]
        instances, dropped = select_instances(chain, decoded.kept, config.duplicate_iou)
        unclaimed = unclaimed_detections(claims, instances)
        return Finished(record, [f.side for f in found], decoded, chain, instances, dropped, unclaimed)

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


class LockstepRunner:
    """Runs a loop's films together; `calls` counts the batched calls per kind of the last run.

    detect_by_shape: one detector call per distinct film shape, so results equal `loop.run`'s;
    False: one call for all films, faster on films of mixed sizes but not identical to `loop.run`.
    """

    def __init__(self, loop: InductiveLoop, detect_by_shape: bool = True):
        self.loop = loop
        self.detect_by_shape = detect_by_shape
        self.calls: Counter = Counter()

    def run_many(
        self,
        images: Sequence[np.ndarray],
        views: Sequence[str | None] | None = None,
        image_ids: Sequence[str | None] | None = None,
    ) -> list[LoopResult]:
        """The same results as `[loop.run(image, view, image_id) ...]`, in the images' order."""
        views = list(views) if views is not None else [None] * len(images)
        image_ids = list(image_ids) if image_ids is not None else [None] * len(images)
        if not len(views) == len(image_ids) == len(images):
            raise ValueError(f"{len(images)} images but {len(views)} views and {len(image_ids)} image ids")
        walks = [self.loop.walk(self.loop.film(image, i), view, i) for image, view, i in zip(images, views, image_ids)]
        self.calls = Counter()
        return run_walks(walks, self.loop.components, self.detect_by_shape, self.calls)
