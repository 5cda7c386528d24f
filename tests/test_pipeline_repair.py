"""Repairs of a walked chain from detections: which detections re-prompt, which masks conflict."""

import numpy as np

from spinefm.pipeline.core.geometry import mask_iou
from spinefm.pipeline.core.repair import conflicts, uncentred
from spinefm.pipeline.core.types import MaskCrop

SPACING = 10.0
CHAIN = np.array([[0.0, 0.0], [0.0, 10.0], [0.0, 20.0], [0.0, 40.0], [0.0, 50.0]])  # a gap at 30


def test_detections_no_position_is_centred_on_within_the_chain_re_prompt():
    detections = np.array([[1.0, 11.0], [5.0, 10.0], [0.0, 15.0], [1.0, 30.0], [0.0, -20.0], [0.0, 70.0]])
    # centred on position 1 / off-centre / between two / in the gap / above the top / below the bottom
    assert uncentred(CHAIN, detections, SPACING, centred=0.25) == [1, 2, 3]
    assert uncentred(CHAIN[:1], detections, SPACING, centred=0.25) == []


def test_detections_that_continue_the_chain_past_its_ends_re_prompt():
    """Below the bottom (50): 65 and 80 continue it within 2 spacings, 120 is too far from 80;
    above the top (0): -30 is too far."""
    detections = np.array([[0.0, 80.0], [0.0, 65.0], [1.0, 120.0], [0.0, -30.0], [1.0, 30.0]])
    assert uncentred(CHAIN, detections, SPACING, centred=0.25, reach=2.0) == [0, 1, 4]
    assert uncentred(CHAIN, detections, SPACING, centred=0.25) == [4]


def test_detections_continue_a_chain_whose_walk_strayed_off_the_spine_before_it_stopped():
    """The last position (25, 30) strayed sideways, 2.7 spacings from the next vertebra (0, 40): that
    one is reached from the position on the spine at 20, and the rest from it."""
    strayed = np.array([[0.0, 0.0], [0.0, 10.0], [0.0, 20.0], [25.0, 30.0]])
    detections = np.array([[0.0, 40.0], [0.0, 50.0], [0.0, 60.0], [0.0, 95.0]])
    assert uncentred(strayed, detections, SPACING, centred=0.25, reach=2.0) == [0, 1, 2]


def test_mask_iou_and_conflicts_of_masks():
    square = MaskCrop(np.ones((4, 4), np.float32), (0, 0))
    shifted = MaskCrop(np.ones((4, 4), np.float32), (2, 0))
    far = MaskCrop(np.ones((4, 4), np.float32), (10, 10))
    assert mask_iou(square, shifted, 0.5) == 8 / 24
    inside = MaskCrop(np.ones((2, 2), np.float32), (1, 1))
    assert conflicts(square, [far, shifted, square, inside], 0.5, max_share=0.2) == [1, 2, 3]
