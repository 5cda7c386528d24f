"""Repairs of a walked chain from detections: which detections re-prompt, which masks conflict, and
walks whose off-centre or missing vertebrae the repairs restore."""

import numpy as np

from helpers.oracles import (
    OraclePredictor,
    OracleSegmenter,
    Sideways,
    Truth,
    all_detected,
    assert_matches_truth,
    disc,
    middle,
    oracle_loop,
    phantom,
)
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


class OffCentre(OracleSegmenter):
    """The vertebra when prompted within a fifth of a spacing of its centroid; elsewhere a small blob
    at the prompt (a prediction between two vertebrae gives a poor, off-centre mask)."""

    def segment_one(self, centres, sides):
        crops = []
        for centre in centres:
            distance = np.linalg.norm(self.truth.centroids - centre, axis=1)
            near = distance.min() <= 0.2 * self.truth.spacing
            crops.append(self.truth.crop(int(np.argmin(distance))) if near else disc(centre, 2))
        return crops


def test_off_centre_steps_are_re_prompted_at_their_detections():
    """Every walking step lands 0.4 spacings sideways (no snapping): blobs. After the walk each
    detection re-prompts the segmenter, whose mask agrees with the detection's: every vertebra is
    found with its mask and level. Without repairs the blobs stay."""
    record = phantom("ap_thoracolumbar")
    truth = Truth(record)
    everything, scores = all_detected(record)

    def run(**config):
        segmenter, predictor = OffCentre(truth), Sideways(truth)
        loop = oracle_loop(record, everything, {"snap_radius": 0.0, **config}, segmenter, predictor, scores=scores)
        return loop.run(record.image, view=record.view)

    repaired = run()
    assert_matches_truth(repaired, record)
    sources = [i.source for i in repaired.instances]
    assert sources.count("repair") == repaired.trace.repairs["replaced"] >= len(record.vertebrae) - 5
    assert repaired.trace.repairs["inserted"] == 0
    blobs = [i for i in run(repair_centred=0.0).instances if i.mask.sum() <= disc((0, 0), 2).values.sum()]
    assert len(blobs) >= len(record.vertebrae) - 5


def test_a_vertebra_stepped_over_is_inserted_from_its_detection():
    """Going down, the walk jumps from L1 straight to L3: L2's detection lies in the gap and is
    segmented there. Without repairs L2 is missing, and the decoder's skip keeps the levels below it."""
    record = phantom("ap_thoracolumbar")
    truth = Truth(record)
    l1, l3 = record.levels.index("L1"), record.levels.index("L3")

    class Jump(OraclePredictor):
        def predict(self, windows, image_sizes):
            points = super().predict(windows, image_sizes)
            for i, window in enumerate(windows):
                if truth.at(window[2]) == l1 and window[2][1] > window[1][1]:
                    points[i] = truth.centroids[l3]
            return points

    everything, scores = all_detected(record)
    assert middle(record)[-1] < l1
    loop = oracle_loop(record, everything, predictor=Jump(truth), scores=scores)
    repaired = loop.run(record.image, view=record.view)
    assert_matches_truth(repaired, record)
    inserted = [i.level for i in repaired.instances if i.source == "repair"]
    assert "L2" in inserted and len(inserted) == repaired.trace.repairs["inserted"]  # L4 too: two-spacing steps on
    unrepaired = oracle_loop(record, everything, {"repair_centred": 0.0}, predictor=Jump(truth), scores=scores)
    levels = unrepaired.run(record.image, view=record.view).levels
    assert "L2" not in levels and levels[: l1 + 2] == record.levels[: l1 + 1] + ["L3"] and levels[-1] == "L5"
