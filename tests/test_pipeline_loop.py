"""The inductive loop driven by oracle components built from synthetic phantoms' ground truth."""

import cv2
import numpy as np
import pytest

from spinefm.data.levels import level_range
from spinefm.data.patches import crop_patch
from spinefm.models.spine_end import BACKGROUND, VERTEBRA, vertebra_class
from spinefm.pipeline import STOP_REASONS, Detection, InductiveLoop, LabelConfig, LoopConfig, MaskCrop, assign_levels
from spinefm.pipeline.loop import best_run, deduplicate, order_along_spine
from spinefm.pipeline.patching import paste, resample
from spinefm.pipeline.types import DOWN, UP, Instance
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

    def segment(self, image, centres, sides):
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
            if self.truthful and target is not None and abs(nearest - middle) == 1 and 0 <= target < len(self.truth.centroids):
                points.append(self.truth.centroids[target])
            else:
                points.append(window[2] + self.velocity * (window[2] - window[1]))
        return np.array(points)


class OracleClassifier:
    patch = PATCH

    def __init__(self, truth, end_levels=END_LEVELS, always=None):
        self.truth, self.end_levels, self.always = truth, end_levels, always

    def classify(self, image, centres, sides):
        classes = []
        for centre in centres:
            x, y = np.round(centre).astype(int)
            inside = 0 <= y < self.truth.labels.shape[0] and 0 <= x < self.truth.labels.shape[1]
            index = int(self.truth.labels[y, x]) - 1 if inside else -1
            if self.always:
                classes.append(self.always)
            elif index < 0:
                classes.append(BACKGROUND)
            else:
                classes.append(vertebra_class(self.truth.record.vertebrae[index].level, self.truth.record.view, self.end_levels))
        return classes


def oracle_loop(record, detected, config=None, segmenter=None, predictor=None, classifier=None, scores=None):
    truth = Truth(record)
    return InductiveLoop(
        OracleDetector(truth, detected, scores),
        segmenter or OracleSegmenter(truth),
        predictor or OraclePredictor(truth),
        classifier or OracleClassifier(truth),
        {"labels": LABELS, **(config or {})},
    )


def middle(record, count=3):
    start = (len(record.vertebrae) - count) // 2
    return list(range(start, start + count))


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


@pytest.mark.parametrize("view", list(SEEDS))
def test_finds_every_vertebra_with_its_level_from_three_middle_seeds(view):
    record = phantom(view)
    seeds = middle(record)
    detected = [seeds[2], seeds[0], seeds[1]]  # detector order does not matter
    result = oracle_loop(record, detected).run(record.image, view=view, image_id=record.id)
    assert_matches_truth(result, record)
    assert result.trace.status == "ok" and [detected[i] for i in result.trace.seeds] == seeds
    ends = END_LEVELS[view]
    for direction, end in ((UP, ends["top"]), (DOWN, ends["bottom"])):
        reason = result.trace.stops[direction]
        assert reason == "end" if end else reason in ("empty_mask", "border")
    assert all(s.outcome in ("kept", *STOP_REASONS) for s in result.trace.steps)


@pytest.mark.parametrize("view", list(SEEDS))
def test_levels_without_end_classes_count_from_the_view(view):
    """A classifier that never says `end`: cervical counts down from C2, lumbar up from S1,
    an AP film with all 17 of T1..L5 takes that range."""
    record = phantom(view)
    truth = Truth(record)
    result = oracle_loop(record, middle(record), classifier=OracleClassifier(truth, end_levels={})).run(record.image, view=view)
    assert_matches_truth(result, record)
    assert all(i.spine_class in ("vertebra",) for i in result.instances)


def test_labels_outside_c1_to_s1_are_dropped():
    record = phantom("lateral_lumbar")  # T12..S1, labelled from L5 at the top: L5, S1, then nothing
    labels = LabelConfig(end_levels={}, first_level="L5", last_level="S1", anchors={"lateral_lumbar": "top"})
    truth = Truth(record)
    result = oracle_loop(record, middle(record), {"labels": labels}, classifier=OracleClassifier(truth, end_levels={})).run(
        record.image, view="lateral_lumbar"
    )
    assert result.levels == ["L5", "S1"]
    assert result.trace.dropped["unlabelled"] == len(record.vertebrae) - 2
    assert_same_masks(result, record, record.vertebrae[:2])


def test_assign_levels_from_landmarks_counts_and_anchors():
    ap = "ap_thoracolumbar"
    assert assign_levels(17, ap, LABELS) == level_range("T1", "L5")
    assert assign_levels(3, ap, LABELS) == ["T1", "T2", "T3"]  # anchored at the top by default
    bottom = LabelConfig(end_levels=END_LEVELS, first_level="C2", last_level="S1", anchors={ap: "bottom"})
    assert assign_levels(3, ap, bottom) == ["L3", "L4", "L5"]
    assert assign_levels(3, ap, LABELS, bottom_end=1) == ["L4", "L5", "S1"]
    assert assign_levels(3, ap, LABELS, top_end=1, bottom_end=2) == ["C7", "T1", "T2"]  # prefer_end: top
    assert assign_levels(2, "lateral_lumbar", LABELS, top_end=0) == ["L5", "S1"]  # lumbar has no top end class
    assert assign_levels(2, "lateral_cervical", LABELS, top_end=1) == ["C1", "C2"]
    assert assign_levels(3, "lateral_lumbar", LABELS, bottom_end=0) == ["S1", None, None]
    assert assign_levels(2, None, LabelConfig()) == [None, None]  # nothing to count from


def test_overlap_stop_when_the_segmenter_finds_the_previous_vertebra_again():
    record = phantom("lateral_lumbar")
    truth = Truth(record)
    result = oracle_loop(record, middle(record), predictor=OraclePredictor(truth, velocity=0.05, truthful=False)).run(record.image)
    assert result.trace.stops == {UP: "overlap", DOWN: "overlap"}
    assert [s.iou for s in result.trace.steps] == [1.0, 1.0]
    assert len(result.instances) == 3


def test_background_stop_where_the_classifier_sees_no_vertebra():
    record = phantom("lateral_cervical")  # below T1 there is no annotated vertebra: a blob there is background
    truth = Truth(record)
    result = oracle_loop(record, middle(record), segmenter=OracleSegmenter(truth, blob=2)).run(record.image, view=record.view)
    assert result.trace.stops == {UP: "end", DOWN: "background"}
    assert result.trace.steps_in(DOWN)[-1].spine_class == BACKGROUND
    assert_matches_truth(result, record)


def test_empty_mask_stop_and_no_seeds():
    record = phantom("ap_thoracolumbar")
    truth = Truth(record)
    seeds = middle(record)
    result = oracle_loop(record, seeds, segmenter=OracleSegmenter(truth, allowed=seeds)).run(record.image)
    assert result.trace.stops == {UP: "empty_mask", DOWN: "empty_mask"}
    assert [i.source for i in result.instances] == ["seed"] * 3
    nothing = oracle_loop(record, seeds, segmenter=OracleSegmenter(truth, allowed=[])).run(record.image)
    assert nothing.trace.status == "no_seeds" and nothing.instances == []
    assert nothing.trace.stops == {UP: "no_seeds", DOWN: "no_seeds"}


def test_border_stop_when_the_prediction_leaves_the_image():
    record = phantom("ap_thoracolumbar")
    truth = Truth(record)
    far = OraclePredictor(truth, velocity=40.0, truthful=False)
    result = oracle_loop(record, middle(record), predictor=far).run(record.image)
    assert result.trace.stops == {UP: "border", DOWN: "border"}
    assert all(s.refined is None and s.side is None for s in result.trace.steps)
    inner = oracle_loop(record, middle(record), {"border_margin": 100.0}).run(record.image)  # margin in spacings
    assert inner.trace.stops == {UP: "border", DOWN: "border"} and len(inner.instances) == 3


@pytest.mark.parametrize("max_steps", [0, 1, 4])
def test_the_step_cap_holds_on_a_spine_that_never_ends(max_steps):
    """Blobs everywhere, always `vertebra`: only the cap stops the walk."""
    image = np.zeros((400, 400), np.uint8)
    points = [np.array([200.0, y]) for y in (190.0, 200.0, 210.0)]
    detections = [Detection(disc(p, 3), 0.9, p, 29.0) for p in points]

    class Blobs:
        patch = PATCH

        def segment(self, image, centres, sides):
            return [disc(c, 3) for c in centres]

    class Always:
        patch = PATCH

        def classify(self, image, centres, sides):
            return [VERTEBRA] * len(centres)

    class Steady:
        def predict(self, windows, sizes):
            return windows[:, 2] + (windows[:, 2] - windows[:, 1])

    loop = InductiveLoop(None, Blobs(), Steady(), Always(), {"max_steps": max_steps, "labels": LABELS})
    result = loop.run_detections(image, detections)
    assert result.trace.stops == {UP: "max_steps", DOWN: "max_steps"}
    for direction in (UP, DOWN):
        assert len(result.trace.steps_in(direction)) == max_steps
    assert len(result.instances) == 3 + 2 * max_steps
    ys = result.centroids[:, 1]
    assert np.all(np.diff(ys) > 0) and np.allclose(np.diff(ys), 10)


def test_no_detections_gives_an_empty_result_and_nothing_leaks_between_images():
    record = phantom("lateral_cervical")
    truth = Truth(record)
    loop = oracle_loop(record, middle(record))
    first = loop.run(record.image)
    assert len(first.instances) == len(record.vertebrae)
    loop.detector = OracleDetector(truth, [])
    empty = loop.run(record.image, image_id="empty")
    assert empty.instances == [] and empty.trace.status == "no_detections"
    assert empty.trace.stops == {UP: "no_seeds", DOWN: "no_seeds"} and empty.trace.steps == []
    assert empty.image_id == "empty" and empty.image_shape == record.image.shape


def test_one_detection_is_segmented_without_walking():
    record = phantom("lateral_cervical")
    truth = Truth(record)
    predictor = OraclePredictor(truth)
    result = oracle_loop(record, [0], predictor=predictor).run(record.image, view=record.view)  # C2 alone
    assert result.trace.stops == {UP: "one_seed", DOWN: "one_seed"} and result.trace.steps == []
    assert predictor.windows == []
    assert result.levels == ["C2"] and result.instances[0].spine_class == "top_end"


@pytest.mark.parametrize("view", list(SEEDS))
def test_two_detections_walk_with_constant_velocity_until_three_points_exist(view):
    record = phantom(view)
    truth = Truth(record)
    predictor = OraclePredictor(truth)
    result = oracle_loop(record, middle(record, 2), predictor=predictor).run(record.image, view=view)
    assert_matches_truth(result, record)
    for direction in (UP, DOWN):
        steps = result.trace.steps_in(direction)
        assert len(steps[0].window) == 2 and all(len(s.window) == 3 for s in steps[1:])
    assert all(len(set(map(tuple, w))) == 3 for w in predictor.windows)


def test_seeds_are_the_consecutive_run_with_the_best_mean_score():
    record = phantom("ap_thoracolumbar")
    n = len(record.vertebrae)
    scores = [0.7] * n
    scores[10:13] = [0.95, 0.9, 0.95]
    scores[3] = 0.99  # one high score alone does not win
    order = np.random.default_rng(0).permutation(n)
    result = oracle_loop(record, list(order), scores=[scores[i] for i in order]).run(record.image, view=record.view)
    assert [int(order[i]) for i in result.trace.seeds] == [10, 11, 12]
    assert [order[i] for i in result.trace.order] == list(range(n))
    assert result.levels == record.levels
    assert result.trace.dropped["duplicate"] == 0


def test_order_along_spine_and_best_run():
    points = np.array([[50.0, 30.0], [10.0, 0.0], [90.0, 60.0], [30.0, 15.0]])
    assert order_along_spine(points).tolist() == [1, 3, 0, 2]
    assert order_along_spine(np.array([[0.0, 5.0], [3.0, 5.0]])).tolist() == [0, 1]  # horizontal: left to right
    assert best_run(np.array([0.9, 0.1, 0.8, 0.8, 0.8]), 3) == 2
    assert best_run(np.array([0.7, 0.8]), 3) == 0


def test_duplicates_keep_the_better_mask_one_to_one():
    def instance(x, score):
        mask = np.ones((10, 10), bool)
        return Instance(MaskCrop(mask.astype(np.float16), (x, 0)), mask, np.array([x + 4.5, 4.5]), score, "seed")

    instances = [instance(0, 0.8), instance(1, 0.95), instance(20, 0.7), instance(2, 0.9)]
    assert deduplicate(instances, 0.5) == [1, 2]
    assert deduplicate(instances, 0.99) == [0, 1, 2, 3]


def test_final_masks_are_compact_crops_with_smoothing_and_threshold():
    record = phantom("ap_thoracolumbar")
    height, width = record.image_shape()
    loop = oracle_loop(record, middle(record), {"smooth_sigma": 1.0, "opening_radius": 1, "final_threshold": 0.5})
    result = loop.run(record.image, view=record.view)
    assert result.levels == record.levels
    for instance in result.instances:
        assert instance.probability.values.dtype == np.float16 and instance.mask.dtype == bool
        assert instance.mask.shape == instance.probability.shape
        assert instance.mask.size < height * width / 4
        x0, y0 = instance.offset
        assert 0 <= x0 and 0 <= y0 and x0 + instance.mask.shape[1] <= width and y0 + instance.mask.shape[0] <= height
        vertebra = instance.to_vertebra()
        assert vertebra.level == instance.level and vertebra.area() == instance.mask.sum()


def test_paste_and_crop_are_exact_inverses():
    rng = np.random.default_rng(0)
    height, width = 40, 30
    for offset in [(5, 7), (-4, -3), (25, 35), (-10, 20)]:
        crop = rng.random((12, 9)).astype(np.float32)
        full = paste(crop, offset, height, width)
        back = crop_patch(np.pad(full, 20), (offset[0] + 20, offset[1] + 20), 12)[:, :9]
        inside = paste(np.ones_like(crop), offset, height, width)
        inside = crop_patch(np.pad(inside, 20), (offset[0] + 20, offset[1] + 20), 12)[:, :9] > 0
        assert np.array_equal(back[inside], crop[inside]) and not back[~inside].any()
        assert full.sum() == pytest.approx(crop[inside].sum(), rel=1e-6)


def test_resample_is_opencvs_linear_resize_on_any_window():
    source = np.random.default_rng(1).random((16, 12)).astype(np.float32)
    for size in [(40, 30), (7, 5)]:
        expected = cv2.resize(source, size[::-1], interpolation=cv2.INTER_LINEAR)
        scale = (source.shape[1] / size[1], source.shape[0] / size[0])
        assert np.allclose(resample(source, scale, (0, 0), size), expected, atol=1e-5)
        window = resample(source, scale, (2, 3), (size[0] - 4, size[1] - 3))
        assert np.allclose(window, expected[3 : size[0] - 1, 2 : size[1] - 1], atol=1e-5)


def test_low_res_pixels_map_back_to_their_original_centres():
    """Low-res pixel u of a side-px patch at x0 covers x0 + (u + 0.5) * side / L - 0.5: a ramp sampled
    there comes back exactly on the original pixels between the first and last low-res centres."""
    side, low = 50, 16
    centres = (np.arange(low) + 0.5) * side / low - 0.5
    ramp = np.add.outer(2.0 * centres, 3.0 * centres)  # value 2 y + 3 x
    back = resample(ramp, (low / side, low / side), (0, 0), (side, side))
    yy, xx = np.indices((side, side))
    inner = (xx >= centres[0]) & (xx <= centres[-1]) & (yy >= centres[0]) & (yy <= centres[-1])
    assert np.allclose(back[inner], (2 * yy + 3 * xx)[inner], atol=1e-4)
