"""The inductive loop driven by oracle components: every vertebra and level found, walking past single
wrong calls, each stop reason, the step cap, few detections, snapping to detections."""

import numpy as np
import pytest

from helpers.oracles import (
    END_LEVELS,
    LABELS,
    PATCH,
    SEEDS,
    OracleClassifier,
    OracleDetector,
    OracleLevelMapper,
    OraclePredictor,
    OracleSegmenter,
    Sideways,
    Truth,
    all_detected,
    assert_matches_truth,
    assert_same_masks,
    disc,
    middle,
    oracle_loop,
    phantom,
)
from spinefm.data.classes import BACKGROUND, BOTTOM_END, TOP_END, VERTEBRA, class_names
from spinefm.pipeline import STOP_REASONS, Detection, InductiveLoop, LabelConfig
from spinefm.pipeline.core.types import DOWN, UP


@pytest.mark.parametrize("view", list(SEEDS))
def test_finds_every_vertebra_with_its_level_from_three_middle_seeds(view):
    record = phantom(view)
    seeds = middle(record)
    detected = [seeds[2], seeds[0], seeds[1]]  # detector order does not matter
    result = oracle_loop(record, detected).run(record.image, view=view, image_id=record.id)
    assert_matches_truth(result, record)
    assert result.trace.status == "ok" and [detected[i] for i in result.trace.seeds] == seeds
    # end calls do not stop the walk: it goes on past both ends until nothing is segmented there
    assert set(result.trace.stops.values()) <= {"empty_mask", "border"}
    assert all(s.outcome in ("kept", "rewound", *STOP_REASONS) for s in result.trace.steps)
    assert result.trace.chain_kept == [True] * len(record.vertebrae) and result.trace.unclaimed == 0


WRONG_CALLS = [  # (view, level, what the classifier says there): an early end, background mid-spine
    ("lateral_cervical", "C4", TOP_END),
    ("lateral_cervical", "C5", BACKGROUND),
    ("lateral_cervical", "C3", BOTTOM_END),
    ("lateral_lumbar", "L3", BOTTOM_END),
    ("lateral_lumbar", "L2", BACKGROUND),
    ("lateral_lumbar", "L4", TOP_END),
    ("ap_thoracolumbar", "L2", BOTTOM_END),
    ("ap_thoracolumbar", "T3", TOP_END),
    ("ap_thoracolumbar", "T8", BACKGROUND),
    ("ap_thoracolumbar", "L4", BACKGROUND),
]


@pytest.mark.parametrize("view, level, wrong", WRONG_CALLS)
def test_one_wrong_call_ends_nothing_and_shifts_no_label(view, level, wrong):
    """The oracle on every view with one vertebra's class called wrong: the walk goes on, and every
    level is still right, with the detector's evidence and without it (seeds only)."""
    record = phantom(view)
    truth = Truth(record)
    classifier = OracleClassifier(truth, wrong={level: wrong})
    everything, scores = all_detected(record)
    result = oracle_loop(record, everything, classifier=classifier, scores=scores).run(record.image, view=view)
    assert_matches_truth(result, record)
    assert level in {record.levels[i] for i in result.trace.seeds} or wrong in [
        s.spine_class for s in result.trace.steps
    ]
    without_detector = oracle_loop(record, middle(record), classifier=classifier).run(record.image, view=view)
    assert_matches_truth(without_detector, record)


LEVEL_CALLS = [  # (view, level, the level called there): both ends and the middle one level off
    ("lateral_cervical", "C2", "C1"),
    ("lateral_cervical", "C5", "C6"),
    ("lateral_lumbar", "L5", "S1"),
    ("lateral_lumbar", "L2", "L1"),
    ("ap_thoracolumbar", "T1", "C7"),
    ("ap_thoracolumbar", "L5", "S1"),
    ("ap_thoracolumbar", "T8", "T9"),
]


@pytest.mark.parametrize("view, level, wrong", LEVEL_CALLS)
def test_level_classes_name_every_vertebra_past_one_wrong_call(view, level, wrong):
    """The oracle with a class per level on every view, one vertebra called one level off (an end
    called past itself among them): every vertebra and level found, from the seeds alone."""
    record = phantom(view)
    classifier = OracleClassifier(Truth(record), targets="levels", confidence=0.6, wrong={level: wrong})
    result = oracle_loop(record, middle(record), classifier=classifier).run(record.image, view=view)
    assert_matches_truth(result, record)
    assert [i.spine_class for i in result.instances if i.level == level] == [wrong]


@pytest.mark.parametrize("view", list(SEEDS))
def test_levels_without_end_classes_count_from_the_view(view):
    """A classifier without end classes: cervical counts down from C2, lumbar up from S1,
    an AP film with all 17 of T1..L5 takes that range."""
    record = phantom(view)
    truth = Truth(record)
    result = oracle_loop(record, middle(record), classifier=OracleClassifier(truth, end_levels={})).run(
        record.image, view=view
    )
    assert_matches_truth(result, record)
    assert all(i.spine_class in ("vertebra",) for i in result.instances)


@pytest.mark.parametrize("view", list(SEEDS))
def test_the_level_map_names_every_view_where_the_end_calls_are_one_off(view):
    """The classifier puts the view's end landmark one vertebra inside the spine (the landmark called
    background, its neighbour the end): alone, the labels follow it; with a level map that names
    each row of the film, every vertebra keeps its level."""
    record = phantom(view)
    truth = Truth(record)
    end, inner = (-1, -2) if view == "lateral_lumbar" else (0, 1)
    wrong = {record.levels[end]: BACKGROUND, record.levels[inner]: BOTTOM_END if end else TOP_END}
    classifier = OracleClassifier(truth, wrong=wrong)
    alone = oracle_loop(record, middle(record), classifier=classifier).run(record.image, view=view)
    assert alone.levels != record.levels
    mapped = oracle_loop(record, middle(record), classifier=classifier, level_mapper=OracleLevelMapper(truth))
    assert_matches_truth(mapped.run(record.image, view=view), record)


def test_positions_outside_the_labelled_range_are_dropped():
    """A lumbar film labelled from L1 down to its S1 landmark: T12 is found and labelled, but dropped."""
    record = phantom("lateral_lumbar")  # T12..S1
    labels = LabelConfig(end_levels=END_LEVELS, first_level="L1", last_level="S1")
    result = oracle_loop(record, middle(record), {"labels": labels}).run(record.image, view="lateral_lumbar")
    assert result.levels == record.levels[1:]
    assert (
        result.trace.chain_kept == [False] + [True] * (len(record.levels) - 1)
        and result.trace.dropped["decoded_out"] == 1
    )
    assert_same_masks(result, record, record.vertebrae[1:])


def test_overlap_stop_when_the_segmenter_finds_the_previous_vertebra_again():
    record = phantom("lateral_lumbar")
    truth = Truth(record)
    result = oracle_loop(record, middle(record), predictor=OraclePredictor(truth, velocity=0.05, truthful=False)).run(
        record.image
    )
    assert result.trace.stops == {UP: "overlap", DOWN: "overlap"}
    assert [s.iou for s in result.trace.steps] == [1.0, 1.0]
    assert len(result.instances) == 3


def test_background_stop_where_the_classifier_sees_no_vertebra():
    """Beyond both ends blobs are segmented and called background: `patience` of them end each
    direction, and the decoder drops them."""
    record = phantom("lateral_cervical")  # below T1 there is no annotated vertebra: a blob there is background
    truth = Truth(record)
    loop = oracle_loop(record, middle(record), {"patience": 2}, segmenter=OracleSegmenter(truth, blob=2))
    result = loop.run(record.image, view=record.view)
    assert result.trace.stops == {UP: "end", DOWN: "background"}  # up: C2, called top_end, was the first doubt
    assert [s.spine_class for s in result.trace.steps_in(UP)[-2:]] == [TOP_END, BACKGROUND]
    assert [s.spine_class for s in result.trace.steps_in(DOWN)[-2:]] == [BACKGROUND] * 2
    assert result.trace.dropped["decoded_out"] == 3
    assert_matches_truth(result, record)


def test_patience_is_the_number_of_doubtful_steps_that_end_a_direction():
    record = phantom("lateral_cervical")
    truth = Truth(record)
    segmenter = OracleSegmenter(truth, blob=2)
    for patience in (1, 2):
        result = oracle_loop(record, middle(record), {"patience": patience}, segmenter=segmenter).run(
            record.image, view=record.view
        )
        down = result.trace.steps_in(DOWN)
        assert result.trace.stops[DOWN] == "background" and [s.spine_class for s in down].count(BACKGROUND) == patience
        assert_matches_truth(result, record)


def test_empty_mask_stop_and_no_seeds():
    record = phantom("ap_thoracolumbar")
    truth = Truth(record)
    seeds = middle(record)
    result = oracle_loop(record, seeds, segmenter=OracleSegmenter(truth, allowed=seeds)).run(record.image)
    assert result.trace.stops == {UP: "empty_mask", DOWN: "empty_mask"}
    assert [i.source for i in result.instances] == ["seed"] * 3
    segmenter = OracleSegmenter(truth, allowed=[])  # the seeds' masks too, not their detections'
    nothing = oracle_loop(record, seeds, {"detector_masks": False}, segmenter).run(record.image)
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

        def segment(self, requests):
            return [[disc(c, 3) for c in r.centres] for r in requests]

    class Always:
        patch = PATCH
        classes, class_prior = class_names(END_LEVELS), None

        def classify(self, requests):
            return [
                np.tile(np.eye(len(self.classes))[self.classes.index(VERTEBRA)], (len(r.centres), 1)) for r in requests
            ]

    class Steady:
        def predict(self, windows, sizes):
            return windows[:, 2] + (windows[:, 2] - windows[:, 1])

    loop = InductiveLoop(None, Blobs(), Steady(), Always(), {"max_steps": max_steps, "labels": LABELS})
    result = loop.run(image, detections=detections)
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


def test_predicted_points_snap_to_unclaimed_detections_and_strays_are_counted():
    """A predictor off by 0.4 spacings sideways: every step near a detection is prompted at its
    centroid instead; a confident detection far from the spine stays unclaimed."""
    record = phantom("ap_thoracolumbar")
    truth = Truth(record)
    everything, scores = all_detected(record)
    loop = oracle_loop(record, everything, predictor=Sideways(truth), scores=scores)
    stray = Detection(disc((5.0, 5.0), 2), 0.95, np.array([5.0, 5.0]), 13.0)
    loop.detector.detect = lambda images, found=loop.detector.detect: [found(images)[0] + [stray]]
    result = loop.run(record.image, view=record.view)
    assert_matches_truth(result, record)
    on_spine = [s for s in result.trace.steps if s.refined is not None]
    assert on_spine and all(
        s.snapped is not None and np.allclose(s.prompt, truth.centroids[truth.at(s.snapped)]) for s in on_spine
    )
    assert result.trace.unclaimed == 1
    unsnapped = oracle_loop(record, everything, {"snap_radius": 0.0}, predictor=Sideways(truth), scores=scores).run(
        record.image
    )
    assert all(s.snapped is None for s in unsnapped.trace.steps)


def test_an_unclaimed_detection_ahead_keeps_a_doubting_direction_going():
    """T11, T12 and L1 called background with no detection on them: `patience` doubts in a row, but
    the detector found L3 just ahead, so the walk goes on to L5 (lookahead 0: it stops at L1)."""
    record = phantom("ap_thoracolumbar")
    truth = Truth(record)
    classifier = OracleClassifier(truth, wrong={level: BACKGROUND for level in ("T11", "T12", "L1")})
    detected = middle(record) + [record.levels.index("L3"), record.levels.index("L4")]
    scores = [0.99] * 3 + [0.9, 0.9]
    result = oracle_loop(record, detected, classifier=classifier, scores=scores).run(record.image, view=record.view)
    assert_matches_truth(result, record)
    stopped = oracle_loop(record, detected, {"lookahead": 0.0}, classifier=classifier, scores=scores).run(
        record.image, view=record.view
    )
    assert stopped.trace.stops[DOWN] == "background" and stopped.trace.steps_in(DOWN)[-1].spine_class == BACKGROUND
    assert len(stopped.trace.chain_kept) < len(result.trace.chain_kept)


def test_a_walk_that_strays_from_the_spine_goes_on_from_the_detection_it_missed():
    """Below L1 the predictor turns sideways off the spine: blobs there, called background. After
    `patience` of them the unclaimed detection of L2 lies ahead of L1, so those steps are dropped
    ("rewound") and the walk goes on from L2 to L5 (lookahead 0: it stops)."""
    record = phantom("ap_thoracolumbar")
    truth = Truth(record)
    l1 = record.levels.index("L1")

    class Stray(OraclePredictor):
        def predict(self, windows, image_sizes):
            points = super().predict(windows, image_sizes)
            for i, window in enumerate(windows):
                if truth.at(window[2]) == l1 and window[2][1] > window[1][1]:  # going down from L1
                    points[i] = window[2] + [1.5 * truth.spacing, 0.5 * truth.spacing]
            return points

    detected = middle(record) + list(range(l1 + 1, len(record.vertebrae)))
    scores = [0.99] * 3 + [0.9] * (len(detected) - 3)
    segmenter = OracleSegmenter(truth, blob=2)
    result = oracle_loop(record, detected, predictor=Stray(truth), segmenter=segmenter, scores=scores).run(
        record.image, view=record.view
    )
    assert_matches_truth(result, record)
    assert [s.outcome for s in result.trace.steps_in(DOWN)].count("rewound") == 3
    stopped = oracle_loop(
        record, detected, {"lookahead": 0.0}, predictor=Stray(truth), segmenter=segmenter, scores=scores
    )
    assert stopped.run(record.image, view=record.view).trace.stops[DOWN] == "background"
