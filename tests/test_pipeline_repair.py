"""Planning repairs of a walked chain from detections: off-centre positions, gaps, nothing else."""

import numpy as np

from spinefm.pipeline.repair import Repair, agreement, overlaps, plan_repairs
from spinefm.pipeline.types import MaskCrop

SPACING = 10.0
CHAIN = np.array([[0.0, 0.0], [0.0, 10.0], [0.0, 20.0], [0.0, 40.0], [0.0, 50.0]])  # 30 missing


def plan(detections, scores=None):
    detections = np.asarray(detections, dtype=float)
    scores = np.ones(len(detections)) if scores is None else np.asarray(scores, dtype=float)
    return plan_repairs(CHAIN, detections, scores, SPACING, centred=0.25, reach=0.75)


def test_centred_detections_need_no_repair():
    assert plan([[0.0, 0.0], [1.0, 11.0], [-2.0, 49.0]]) == []


def test_an_off_centre_position_is_replaced_by_its_best_detection():
    """Two detections near position 1 (5 px off): the better-scoring one re-prompts it."""
    assert plan([[5.0, 10.0], [0.0, 15.0]], scores=[0.8, 0.9]) == [Repair(detection=1, position=1, insert=False)]


def test_a_detection_in_a_gap_is_inserted_before_the_next_position():
    assert plan([[1.0, 30.0]]) == [Repair(detection=0, position=3, insert=True)]


def test_detections_beyond_the_ends_or_off_the_spine_are_left_alone():
    assert plan([[0.0, -20.0], [0.0, 70.0], [30.0, 30.0]]) == []


def test_agreement_and_overlap_of_masks():
    square = MaskCrop(np.ones((4, 4), np.float32), (0, 0))
    shifted = MaskCrop(np.ones((4, 4), np.float32), (2, 0))
    far = MaskCrop(np.ones((4, 4), np.float32), (10, 10))
    assert agreement(square, shifted, 0.5) == 8 / 24
    assert overlaps(square, [far, shifted], 0.5, max_iou=0.1) and not overlaps(square, [far], 0.5, max_iou=0.1)
