"""`detector_masks`: a seed or step on a confident detection takes the detection's own mask, so the
segmenter is prompted only where no detection is confident, and the walk finds the same chain."""

import numpy as np

from helpers.oracles import OracleSegmenter, Truth, all_detected, assert_matches_truth, middle, oracle_loop, phantom
from spinefm.pipeline import Detection
from spinefm.pipeline.core.types import MaskCrop


class Counting(OracleSegmenter):
    """The oracle segmenter, recording which vertebra (None: none) each prompt landed on."""

    def __init__(self, truth):
        super().__init__(truth)
        self.prompted = []

    def segment_one(self, centres, sides):
        self.prompted += [self.truth.at(centre) for centre in centres]
        return super().segment_one(centres, sides)


def test_confident_detections_keep_their_masks_and_the_segmenter_does_the_rest():
    record = phantom("ap_thoracolumbar")
    truth = Truth(record)
    everything = list(range(len(record.vertebrae)))
    seeds = middle(record)
    # the seeds and every other vertebra confident; the rest found with a score below snap_score
    scores = [0.99 if i in seeds else (0.9 if i % 2 else 0.3) for i in everything]
    confident = {i for i in everything if scores[i] >= 0.6}

    def run(detector_masks):
        segmenter = Counting(truth)
        loop = oracle_loop(record, everything, {"detector_masks": detector_masks}, segmenter, scores=scores)
        return loop.run(record.image, view=record.view), segmenter.prompted

    result, prompted = run(True)
    assert_matches_truth(result, record)
    on_vertebrae = [i for i in prompted if i is not None]
    assert sorted(on_vertebrae) == sorted(set(everything) - confident)  # each once, none confident
    assert result.trace.masks == {"detector": len(confident), "segmenter": len(prompted)}
    assert result.trace.unclaimed == 0 and all(s.support > 0 for s in result.trace.steps if s.snapped is not None)

    every, prompted_every = run(False)
    assert_matches_truth(every, record)
    assert sorted(i for i in prompted_every if i is not None) == everything
    assert every.trace.masks == {"detector": 0, "segmenter": len(prompted_every)}
    for mine, theirs in zip(result.instances, every.instances):
        assert np.array_equal(mine.full_mask(*record.image_shape()), theirs.full_mask(*record.image_shape()))


def test_a_detection_astride_two_vertebrae_replaces_neither():
    """A confident detection over the lower half of L2 and the upper half of L3 (as Mask R-CNN gives
    over a disc): no step snaps to it, and its own mask overlaps both, so the repair re-prompts the
    segmenter there instead of taking that mask; every vertebra keeps its own."""
    record = phantom("ap_thoracolumbar")
    truth = Truth(record)
    upper, lower = record.levels.index("L2"), record.levels.index("L3")
    (top, _), (bottom, _) = truth.centroids[upper][::-1], truth.centroids[lower][::-1]
    rows = np.arange(truth.labels.shape[0])[:, None]
    astride = np.isin(truth.labels, [upper + 1, lower + 1]) & (rows >= top) & (rows <= bottom)
    centre = np.argwhere(astride)[:, ::-1].mean(axis=0)
    extra = Detection(MaskCrop(astride.astype(np.float32), (0, 0)), 0.95, centre, float(astride.sum()))
    everything, scores = all_detected(record)
    loop = oracle_loop(record, everything, {"detector_masks": True}, scores=scores)
    loop.detector.detect = lambda images, found=loop.detector.detect: [found(images)[0] + [extra]]
    result = loop.run(record.image, view=record.view)
    assert_matches_truth(result, record)
    assert result.trace.repairs == {"replaced": 0, "inserted": 0, "rejected": 1}
    assert result.trace.masks["segmenter"] >= 1 and all(s.snapped is None or s.support > 0 for s in result.trace.steps)
