"""The inductive loop driven by oracle components: every vertebra and level found, each stop reason, the step cap, few detections."""

import numpy as np
import pytest

from spinefm.data.levels import level_range
from spinefm.models.spine_end import BACKGROUND, VERTEBRA
from spinefm.pipeline import STOP_REASONS, Detection, InductiveLoop, LabelConfig, assign_levels
from spinefm.pipeline.types import DOWN, UP
from oracles import (
    END_LEVELS, LABELS, PATCH, SEEDS, OracleClassifier, OracleDetector, OraclePredictor, OracleSegmenter, Truth,
    assert_matches_truth, assert_same_masks, disc, middle, oracle_loop, phantom,
)


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
