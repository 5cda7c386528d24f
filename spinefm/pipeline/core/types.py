"""What the inductive loop passes around and returns: compact masks, instances and a trace.

Masks are never held at image size: a probability crop is a float array plus the (x0, y0) of its
top-left pixel in the image, clipped to the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from spinefm.data.record import Vertebra
from spinefm.pipeline.core.decode import ChainView
from spinefm.pipeline.core.patching import paste

ROLES = ("detector", "segmenter", "predictor", "classifier")  # what the loop asks of its components
OPTIONAL_ROLES = ("level_mapper",)  # what it asks where a manifest lists one
ALL_ROLES = ROLES + OPTIONAL_ROLES
UP, DOWN = "up", "down"
SEED = "seed"
REPAIR = "repair"  # a chain position re-prompted at a detection after the walk (`spinefm.pipeline.core.repair`)

# Why a direction of the walk stopped (Trace.stops[direction]).
STOP_REASONS = {
    "end": "`patience` doubtful steps in a row after the classifier called this direction's end class "
    "(kept for decoding)",
    "background": "`patience` doubtful steps in a row, the end class never called (kept for decoding)",
    "overlap": "the new mask overlaps the previous one with IoU > overlap_iou (discarded)",
    "empty_mask": "no pixel of the new mask is above mask_threshold (discarded)",
    "border": "the predicted point is not a finite point inside the image less border_margin (not segmented)",
    "max_steps": "max_steps steps were taken in this direction",
    "one_seed": "a single seed: no direction to walk in",
    "no_seeds": "nothing to walk from: no detection, or every seed's mask was empty",
}
# What happened to the film as a whole (Trace.status).
STATUSES = ("ok", "no_detections", "no_seeds")


@dataclass
class MaskCrop:
    """Per-pixel probabilities on a crop of the image: pixel (x, y) of the image is
    values[y - y0, x - x0] for x0 <= x < x0 + width, y0 <= y < y0 + height."""

    values: np.ndarray
    offset: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape

    def binary(self, threshold: float) -> np.ndarray:
        return self.values > threshold

    def weighted_centroid(self, threshold: float) -> np.ndarray | None:
        """(x, y) centre of the pixels above `threshold`, each weighted by its probability; None if there are none."""
        return weighted_centroid(np.where(self.values > threshold, self.values, 0), self.offset)


def weighted_centroid(weights: np.ndarray, offset: tuple[int, int]) -> np.ndarray | None:
    """(x, y) image position of a crop's pixels averaged by `weights`, the crop's top-left pixel at
    `offset`; None where the weights sum to nothing."""
    weights = weights.astype(np.float64)
    total = weights.sum()
    if total <= 0:
        return None
    rows, cols = np.indices(weights.shape)
    return np.array([(weights * cols).sum() / total + offset[0], (weights * rows).sum() / total + offset[1]])


@dataclass
class Detection:
    """One object the detector found: its probability crop, score, and the centroid and area (pixels)
    of its binarised mask."""

    probability: MaskCrop
    score: float
    centroid: np.ndarray
    area: float


@dataclass
class Instance:
    """A vertebra the loop kept: probability crop and final binary mask on the same crop.

    source: "seed", "up", "down" or "repair"; spine_class: the end classifier's most likely class at its
    centroid (None where it was not asked); score: mean probability over the final mask; level: decoded.
    """

    probability: MaskCrop
    mask: np.ndarray
    centroid: np.ndarray
    score: float
    source: str
    spine_class: str | None = None
    level: str | None = None

    @property
    def offset(self) -> tuple[int, int]:
        return self.probability.offset

    def to_vertebra(self) -> Vertebra:
        """The instance as a data-layer `Vertebra` (cropped mask), e.g. for evaluation or export."""
        if self.level is None:
            raise ValueError("an instance without a level cannot become a Vertebra")
        return Vertebra(self.level, mask=self.mask, offset=self.offset, exact=False)

    def full_mask(self, height: int, width: int) -> np.ndarray:
        """The binary mask pasted into an (height, width) image."""
        return paste(self.mask, self.offset, height, width)


@dataclass
class ChainPosition:
    """A position of the chain: a segmented vertebra candidate before decoding and post-processing.
    source: SEED, UP, DOWN or REPAIR."""

    probability: MaskCrop
    centroid: np.ndarray
    source: str
    class_probabilities: np.ndarray | None  # the classifier's, in its class order (None: not asked)
    support: float = 0.0  # best confident detection score under the mask (0: none)
    step: Step | None = None  # the walk's step that found it (None: a seed or a repair)
    side: int | None = None  # the classifier patch's side in pixels (None: not asked)


@dataclass
class Step:
    """One step of the walk. outcome: "kept", the stop reason that ended its direction, or "rewound"
    (one of `patience` doubtful steps dropped when the walk went on from an unclaimed detection).

    snapped: the unclaimed detection centroid the predicted point moved to (None: not snapped);
    mask_score: Med-SA's confidence in the mask (mean probability over its foreground);
    probabilities: the end classifier's class probabilities at the refined centroid, spine_class
    their argmax; support: the best confident detection score under the mask (0: none)."""

    direction: str
    index: int
    window: np.ndarray  # (3, 2) furthest, middle, nearest centroid; fewer rows before three exist
    predicted: np.ndarray
    outcome: str
    snapped: np.ndarray | None = None
    side: int | None = None
    refined: np.ndarray | None = None
    mask_score: float | None = None
    iou: float | None = None
    probabilities: dict[str, float] | None = None
    spine_class: str | None = None
    support: float | None = None

    @property
    def prompt(self) -> np.ndarray:
        """Where the segmenter was prompted: the snapped detection, else the predicted point."""
        return self.predicted if self.snapped is None else self.snapped


@dataclass
class Trace:
    """How the loop got its result: the detections (in detector order), their order along the spine,
    the seeds (indices into the detections), the refined centroids of the seeds whose mask was not
    empty, the end classifier's `classes`, every step (both directions interleaved, as they ran), and
    why each direction stopped. The chain (up steps reversed, seeds, down steps, each segmented and
    classified) is the decoder's input (`chain_probabilities`, `chain_support`, `chain_view`,
    `class_prior`, `chain_centroids`; where the loop has a level mapper, `chain_level_map`: its
    probabilities over `level_map_names` at each position's row) and decodes to `chain_levels` (None:
    junk or off the spine) and `chain_kept` (a vertebra of the labelled range); `chain_sides` are the
    classifier's patch sides at each position (None: not classified), to classify the chain again
    offline. dropped counts chain positions removed: "decoded_out" (not kept by the decoder), "empty"
    (nothing left after post-processing), "duplicate" (overlapping a better one). unclaimed: confident
    detections under no final mask. repairs: chain positions "replaced" and "inserted" from
    detections, and re-prompts "rejected". masks: the masks the walk took, by source: "segmenter"
    (patches it segmented) and "detector" (a confident detection's own, `detector_masks`)."""

    status: str = "ok"
    detection_centroids: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    detection_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    classes: list[str] = field(default_factory=list)
    order: list[int] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    seed_centroids: list[np.ndarray] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    stops: dict[str, str] = field(default_factory=dict)
    chain_probabilities: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    chain_support: np.ndarray = field(default_factory=lambda: np.zeros(0))
    chain_centroids: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    chain_sides: list[int | None] = field(default_factory=list)
    chain_view: ChainView | None = None
    class_prior: list[float] | None = None
    chain_level_map: np.ndarray | None = None
    level_map_names: list[str] | None = None
    chain_levels: list[str | None] = field(default_factory=list)
    chain_kept: list[bool] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    unclaimed: int = 0
    repairs: dict[str, int] = field(default_factory=dict)
    masks: dict[str, int] = field(default_factory=dict)

    def steps_in(self, direction: str) -> list[Step]:
        return [s for s in self.steps if s.direction == direction]


@dataclass
class LoopResult:
    """The kept instances top to bottom, with their level labels, and the trace; chain: every chain
    position post-processed (None where its mask came out empty), for decoding again offline."""

    image_id: str | None
    image_shape: tuple[int, int]
    view: str | None
    instances: list[Instance]
    trace: Trace
    chain: list[Instance | None] = field(default_factory=list)

    @property
    def levels(self) -> list[str | None]:
        return [i.level for i in self.instances]

    @property
    def centroids(self) -> np.ndarray:
        return np.array([i.centroid for i in self.instances]).reshape(-1, 2)


@dataclass(frozen=True)
class Patches:
    """Square patches of one film: `centres` (N, 2) as (x, y) pixels, `sides` one side (pixels) per centre."""

    film: np.ndarray
    centres: np.ndarray
    sides: tuple[int, ...]


# The four roles the loop drives, each through a batched interface: one call answers the requests of
# many films (`spinefm.pipeline.core.requests`). Films are uint8 (`spinefm.data.intensity.to_uint8`, as in
# training); points are (x, y) pixels. `patch` is the component's patch setting
# {mode, side_px, spacing_factor} (`spinefm.data.patches.patch_side`).


class Detector(Protocol):
    def detect(self, films: Sequence[np.ndarray]) -> list[list[Detection]]: ...


class Segmenter(Protocol):
    patch: dict

    def segment(self, requests: Sequence[Patches]) -> list[list[MaskCrop]]:
        """Per request, the mask of the vertebra at each centre."""
        ...


class Predictor(Protocol):
    def predict(self, windows: np.ndarray, image_sizes: np.ndarray) -> np.ndarray:
        """windows (N, 3, 2) furthest, middle, nearest centroid; image_sizes (N, 2) as (width, height) -> (N, 2)."""
        ...


class Classifier(Protocol):
    patch: dict
    classes: list[str]  # the classifier's classes in index order (`spinefm.models.spine_end.target_classes`)
    class_prior: list[float] | None  # class frequencies in training (None: every class equally often)

    def classify(self, requests: Sequence[Patches]) -> list[np.ndarray]:
        """Per request, class probabilities (N, len(classes)) at its centres."""
        ...


class LevelMapper(Protocol):
    names: list[str]  # `above`, the levels top to bottom, `below` (`spinefm.data.level_rows`)

    def map_levels(self, films: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per uint8 film, (rows, len(names)) probabilities of the level at each band of rows, top to bottom."""
        ...
