"""Oracle loop components built from synthetic phantoms' ground truth, and checks of a loop result against it."""

import numpy as np

from spinefm.data.classes import BACKGROUND, sample_class, target_classes
from spinefm.data.level_rows import IGNORE, level_map_names, row_targets
from spinefm.pipeline import Detection, InductiveLoop, LabelConfig, MaskCrop
from spinefm.synthetic import PhantomConfig, generate_phantom

END_LEVELS = {
    "lateral_cervical": {"top": "C2", "bottom": None},
    "lateral_lumbar": {"top": None, "bottom": "S1"},
    "ap_thoracolumbar": {"top": "T1", "bottom": "L5"},
}
LABELS = LabelConfig(end_levels=END_LEVELS, first_level="C2", last_level="S1")
PATCH = {"mode": "spacing", "side_px": 100, "spacing_factor": 3.0}
# Whole spines (no cut-off) at 256 px: cervical C2..T1, lumbar T12..S1, AP T1..L5.
SEEDS = {"lateral_cervical": 2, "lateral_lumbar": 0, "ap_thoracolumbar": 0}


def phantom(view):
    record = generate_phantom(SEEDS[view], PhantomConfig(image_size=256), view=view)
    assert record.meta["cut_off"] is None
    return record


class Truth:
    """Ground truth of a record: label map (index + 1 per pixel), centroids, median spacing."""

    def __init__(self, record):
        self.record = record
        height, width = record.image_shape()
        self.labels = np.zeros((height, width), np.int32)
        for i, vertebra in enumerate(record.vertebrae):
            self.labels[vertebra.to_mask(height, width)] = i + 1
        self.centroids = np.stack([v.centroid() for v in record.vertebrae])
        self.spacing = float(np.median(np.linalg.norm(np.diff(self.centroids, axis=0), axis=1)))

    def at(self, point, allowed=None) -> int | None:
        """Index of the vertebra under the point, else the nearest within half a spacing."""
        x, y = np.round(point).astype(int)
        height, width = self.labels.shape
        if 0 <= x < width and 0 <= y < height and self.labels[y, x]:
            index = int(self.labels[y, x]) - 1
        else:
            distance = np.linalg.norm(self.centroids - point, axis=1)
            index = int(np.argmin(distance)) if distance.min() <= self.spacing / 2 else None
        return index if allowed is None or index in allowed else None

    def crop(self, index) -> MaskCrop:
        mask, offset = self.record.vertebrae[index].mask_crop()
        return MaskCrop(mask.astype(np.float32), offset)


class OracleDetector:
    def __init__(self, truth, indices, scores=None):
        self.truth, self.indices = truth, list(indices)
        self.scores = scores or [0.9] * len(self.indices)

    def detect(self, images):
        detections = []
        for i, score in zip(self.indices, self.scores):
            crop = self.truth.crop(i)
            detections.append(Detection(crop, score, self.truth.centroids[i], float(crop.values.sum())))
        return [detections for _ in images]


class OracleSegmenter:
    """The vertebra at the patch centre; `allowed` restricts which ones it knows; elsewhere an empty
    mask, or a disc of `blob` pixels radius."""

    patch = PATCH

    def __init__(self, truth, allowed=None, blob=0):
        self.truth, self.allowed, self.blob = truth, allowed, blob
        self.sides = []

    def segment(self, requests):
        return [self.segment_one(r.centres, r.sides) for r in requests]

    def segment_one(self, centres, sides):
        self.sides += list(sides)
        crops = []
        for centre in centres:
            index = self.truth.at(centre, self.allowed)
            if index is not None:
                crops.append(self.truth.crop(index))
            elif self.blob:
                crops.append(disc(centre, self.blob))
            else:
                crops.append(MaskCrop(np.zeros((0, 0), np.float32), (0, 0)))
        return crops


def disc(centre, radius) -> MaskCrop:
    side = 2 * radius + 1
    yy, xx = np.indices((side, side)) - radius
    x0, y0 = np.round(centre).astype(int) - radius
    return MaskCrop((xx**2 + yy**2 <= radius**2).astype(np.float32), (int(x0), int(y0)))


class OraclePredictor:
    """The true next centroid where the window sits on consecutive vertebrae; else a step of
    `velocity` x the last step (1: constant velocity, 0: stall)."""

    def __init__(self, truth, velocity=1.0, truthful=True):
        self.truth, self.velocity, self.truthful = truth, velocity, truthful
        self.windows = []

    def predict(self, windows, image_sizes):
        assert windows.shape[1:] == (3, 2) and image_sizes.shape == (len(windows), 2)
        self.windows += list(windows)
        points = []
        for window in windows:
            middle, nearest = (self.truth.at(p) for p in window[1:])
            target = None if middle is None or nearest is None else 2 * nearest - middle
            if (
                self.truthful
                and target is not None
                and abs(nearest - middle) == 1
                and 0 <= target < len(self.truth.centroids)
            ):
                points.append(self.truth.centroids[target])
            else:
                points.append(window[2] + self.velocity * (window[2] - window[1]))
        return np.array(points)


class OracleClassifier:
    """The true class at each point as probabilities: `confidence` on it, the rest spread evenly.
    targets: `ends` or `levels` (the classes of spinefm.models.spine_end.target_classes);
    always: this class everywhere; wrong: {level: class} called at those vertebrae instead."""

    patch = PATCH

    def __init__(self, truth, end_levels=END_LEVELS, always=None, wrong=None, confidence=0.9, targets="ends"):
        self.truth, self.end_levels, self.always, self.wrong = truth, end_levels, always, dict(wrong or {})
        self.classes = target_classes(targets, end_levels, LABELS.first_level, LABELS.last_level)
        self.class_prior = None
        self.confidence = confidence

    def name(self, centre) -> str:
        x, y = np.round(centre).astype(int)
        inside = 0 <= y < self.truth.labels.shape[0] and 0 <= x < self.truth.labels.shape[1]
        index = int(self.truth.labels[y, x]) - 1 if inside else -1
        if self.always:
            return self.always
        if index < 0:
            return BACKGROUND
        level = self.truth.record.vertebrae[index].level
        return self.wrong.get(level) or sample_class(level, self.truth.record.view, self.classes, self.end_levels)

    def classify(self, requests):
        return [self.classify_one(r.centres) for r in requests]

    def classify_one(self, centres):
        return np.stack([one_hot(self.classes, self.name(c), self.confidence) for c in centres]).reshape(
            -1, len(self.classes)
        )


class OracleLevelMapper:
    """The level at each of `rows` bands of the film from its annotation (`row_targets`) at
    `confidence`, the rest spread evenly; rows of unknown level say nothing."""

    def __init__(self, truth, rows=64, confidence=0.9):
        self.truth, self.rows, self.confidence = truth, rows, confidence
        self.names = level_map_names(LABELS.first_level, LABELS.last_level, END_LEVELS)

    def map_levels(self, films):
        record = self.truth.record
        height = record.image_shape()[0]
        targets = row_targets(self.truth.centroids[:, 1], record.levels, self.names, height, self.rows)
        rows = np.full((self.rows, len(self.names)), 1.0 / len(self.names))
        for row, target in zip(rows, targets):
            if target != IGNORE:
                row[:] = one_hot(self.names, self.names[target], self.confidence)
        return [rows for _ in films]


def one_hot(classes, name, confidence=0.9) -> np.ndarray:
    """Probabilities with `confidence` on `name` and the rest spread over the other classes."""
    probabilities = np.full(len(classes), (1.0 - confidence) / (len(classes) - 1))
    probabilities[classes.index(name)] = confidence
    return probabilities


def oracle_loop(
    record, detected, config=None, segmenter=None, predictor=None, classifier=None, scores=None, level_mapper=None
):
    truth = Truth(record)
    return InductiveLoop(
        OracleDetector(truth, detected, scores),
        segmenter or OracleSegmenter(truth),
        predictor or OraclePredictor(truth),
        classifier or OracleClassifier(truth),
        {"labels": LABELS, **(config or {})},
        level_mapper=level_mapper,
    )


def middle(record, count=3):
    start = (len(record.vertebrae) - count) // 2
    return list(range(start, start + count))


class Sideways(OraclePredictor):
    """The oracle's point moved 0.4 spacings to the right."""

    def predict(self, windows, image_sizes):
        return super().predict(windows, image_sizes) + [0.4 * self.truth.spacing, 0.0]


def all_detected(record):
    """Every vertebra detected: (indices, scores), the middle three the best (the seeds)."""
    everything = list(range(len(record.vertebrae)))
    return everything, [0.99 if i in middle(record) else 0.9 for i in everything]


def assert_matches_truth(result, record):
    """The instances are the record's vertebrae, top to bottom, with their levels."""
    assert result.levels == record.levels
    assert_same_masks(result, record, record.vertebrae)


def assert_same_masks(result, record, vertebrae):
    assert len(result.instances) == len(vertebrae)
    for instance, vertebra in zip(result.instances, vertebrae):
        mask, offset = vertebra.mask_crop()
        assert np.array_equal(instance.full_mask(*record.image_shape()), vertebra.to_mask(*record.image_shape()))
        assert np.allclose(instance.centroid, np.argwhere(mask)[:, ::-1].mean(axis=0) + offset)
