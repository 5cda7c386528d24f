"""What a film's walk asks of the components (`InductiveLoop.walk` yields these and is sent the answers).

Each kind of request names the role that answers it and serves a batch of requests, from any
number of films, with ONE call of that role's batched interface (`types.Detector` ...),
returning one answer per request in order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from spinefm.pipeline.core.types import ChainPosition, MaskCrop, Patches


class _Request:
    def batch_key(self, by_shape: bool):
        """Requests with equal keys may share a call."""
        return None


@dataclass(frozen=True)
class Detect(_Request):
    """Answer: the film's detections."""

    role: ClassVar[str] = "detector"
    film: np.ndarray

    def batch_key(self, by_shape: bool):
        # Mask R-CNN pads a batch to its largest film, which changes its proposals on the smaller ones.
        return self.film.shape if by_shape else None

    @staticmethod
    def serve(detector, requests: Sequence[Detect]) -> list:
        return detector.detect([r.film for r in requests])


@dataclass(frozen=True)
class MapLevels(_Request):
    """Answer: the film's level map, (rows, len(names)) probabilities top to bottom."""

    role: ClassVar[str] = "level_mapper"
    film: np.ndarray

    @staticmethod
    def serve(mapper, requests: Sequence[MapLevels]) -> list:
        return mapper.map_levels([r.film for r in requests])


@dataclass(frozen=True)
class Segment(Patches, _Request):
    """Answer: a `MaskCrop` per centre."""

    role: ClassVar[str] = "segmenter"

    @staticmethod
    def serve(segmenter, requests: Sequence[Segment]) -> list:
        return segmenter.segment(requests)


@dataclass(frozen=True)
class Classify(Patches, _Request):
    """Answer: class probabilities (N, len(classes))."""

    role: ClassVar[str] = "classifier"

    @staticmethod
    def serve(classifier, requests: Sequence[Classify]) -> list:
        return classifier.classify(requests)


@dataclass(frozen=True)
class Predict(_Request):
    """windows (N, 3, 2) of one film of `image_size` (width, height). Answer: the next points (N, 2)."""

    role: ClassVar[str] = "predictor"
    windows: np.ndarray
    image_size: tuple[int, int]

    @staticmethod
    def serve(predictor, requests: Sequence[Predict]) -> list:
        windows = np.concatenate([r.windows for r in requests])
        sizes = np.concatenate([np.tile(np.asarray(r.image_size, np.float64), (len(r.windows), 1)) for r in requests])
        return split(predictor.predict(windows, sizes), [len(r.windows) for r in requests])


def masks_at(
    film: np.ndarray, prompts: np.ndarray, sides: Sequence[int], known: Sequence[MaskCrop | None], tally: Counter
) -> Generator[Request, object, list[MaskCrop]]:
    """A mask per prompt: the known one (a confident detection's own) where given, else the segmenter's
    (one request for all of those). tally counts them under "detector" and "segmenter"."""
    missing = [i for i, mask in enumerate(known) if mask is None]
    masks = list(known)
    if missing:
        answers = yield Segment(film, np.asarray(prompts)[missing], tuple(sides[i] for i in missing))
        for i, mask in zip(missing, answers, strict=True):
            masks[i] = mask
    tally["segmenter"] += len(missing)
    tally["detector"] += len(known) - len(missing)
    return masks


def classify_positions(film: np.ndarray, positions: list[ChainPosition], side: int) -> Generator[Request, object, None]:
    """Classify chain positions at their centroids on patches of `side` px, recording on each its
    class probabilities and the side."""
    answers = yield Classify(film, np.stack([p.centroid for p in positions]), (side,) * len(positions))
    for position, probabilities in zip(positions, answers, strict=True):
        position.class_probabilities, position.side = np.asarray(probabilities, dtype=np.float64), side


def split(rows, counts: Sequence[int]) -> list:
    """`rows` cut into consecutive pieces of `counts` rows."""
    bounds = np.cumsum([0, *counts])
    return [rows[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


Request = Detect | MapLevels | Segment | Classify | Predict
# The order of a step: kinds are served round-robin in it, so a film that skipped a call waits for
# the others and batches stay full.
KINDS = (Detect, MapLevels, Predict, Segment, Classify)
