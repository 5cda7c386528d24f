"""The inductive loop's settings: every default is here (`pipeline.loop` of infer.py and evaluate.py is
this dataclass as a Hydra schema, hydra_plugins/spinefm_schemas.py; configs/pipeline/default.yaml
sets only what differs, and docs/method.md's table is checked against it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from spinefm.pipeline.core.decode import DecodeConfig
from spinefm.pipeline.core.labels import LabelConfig
from spinefm.settings import check_fractions


@dataclass
class LoopConfig:
    """Every setting of the loop (SpineFM's defaults where it has them).

    num_seeds: consecutive detections the walk starts from. mask_threshold: probability binarising a new
    mask for the empty-mask stop, the overlap IoU, the refined centroid and which detections a position
    claims (None: Med-SA's, which `load_loop` takes from its checkpoint). overlap_iou: stop (and
    discard) when the new mask's IoU with the previous one exceeds it. max_steps: steps per direction.
    border_margin: predicted points must lie this many centroid spacings inside the image (negative:
    outside is allowed). classify_seeds: ask the end classifier about the seeds too. size_to_spacing:
    with a single seed, centroid spacing = this x sqrt(its detected area), for spacing-sized patches.
    patience: doubtful steps in a row (called background or this direction's end class, no confident
    detection under the mask) that end a direction; lookahead: a confident unclaimed detection within
    this many spacings ahead of the walking end keeps it going (0: never). snap_radius: a predicted
    point moves to the centroid of a confident unclaimed detection within this many spacings (0: never); snap_score: the
    detection score that counts as confident (for snapping, lookahead, repairs and a step's support).
    repair_centred (spacings; 0: no repairs): after the walk, a confident detection within the
    chain's extent with no position this close re-prompts the segmenter; the new mask replaces the
    positions it overlaps (sharing more than repair_overlap of the smaller mask) if it agrees better
    with the detection's mask, or fills a gap (`repair`). repair_reach (spacings; 0: none): so do
    confident detections past the chain's ends that continue it, each within this many spacings of
    a chain position or of a detection chosen before it.
    detector_masks: a seed, step or repair on a confident detection takes the detection's own mask
    instead of prompting the segmenter (which then segments only where no detection is confident).
    final_threshold (None: mask_threshold), smooth_sigma (Gaussian on the probabilities, px; 0: none),
    opening_radius (binary opening, px; 0: none): the final masks. duplicate_iou: of two final masks
    overlapping more, the lower-scoring one is dropped. crop_floor: instance crops keep the box of
    pixels with probability above it (and the mask). probability_dtype: how instances store
    probabilities.
    decode: `decode.DecodeConfig`; labels: the view's ends, labelled range and anchors.
    """

    num_seeds: int = 3
    mask_threshold: float | None = 0.9
    overlap_iou: float = 0.1
    max_steps: int = 30
    border_margin: float = 0.0
    classify_seeds: bool = True
    size_to_spacing: float = 1.1
    patience: int = 3
    lookahead: float = 2.5
    snap_radius: float = 0.5
    snap_score: float = 0.6
    repair_centred: float = 0.25
    repair_overlap: float = 0.2
    repair_reach: float = 2.0
    detector_masks: bool = True
    final_threshold: float | None = None
    smooth_sigma: float = 0.0
    opening_radius: int = 0
    duplicate_iou: float = 0.5
    crop_floor: float = 0.1
    probability_dtype: str = "float16"
    sequential: bool = False
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)

    def __post_init__(self):
        if self.mask_threshold is None:
            raise ValueError("mask_threshold None means Med-SA's: build the loop with load_loop, or give a number")
        if self.final_threshold is None:
            self.final_threshold = self.mask_threshold
        if isinstance(self.labels, Mapping):
            self.labels = LabelConfig(**self.labels)
        if isinstance(self.decode, Mapping):
            self.decode = DecodeConfig(**self.decode)
        if self.repair_centred < 0 or self.repair_reach < 0:
            raise ValueError(
                f"repair_centred and repair_reach must not be negative, not {self.repair_centred}, {self.repair_reach}"
            )
        if self.num_seeds < 1 or self.max_steps < 0 or self.patience < 1:
            raise ValueError("num_seeds and patience must be at least 1 and max_steps at least 0")
        check_fractions(
            self,
            (
                "mask_threshold",
                "overlap_iou",
                "final_threshold",
                "duplicate_iou",
                "crop_floor",
                "snap_score",
                "repair_overlap",
            ),
        )
