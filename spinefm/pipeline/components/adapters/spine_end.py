"""The classifier role: class probabilities at chain positions, averaged over a patch and its mirror."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from spinefm.data.patches import classifier_patch
from spinefm.pipeline.components.adapters.base import Adapter
from spinefm.pipeline.components.roles import register_adapter
from spinefm.pipeline.core.requests import split
from spinefm.pipeline.core.types import Patches


@register_adapter("spine_end")
class SpineEndAdapter(Adapter):
    """The spine-end classifier on `classifier_patch` patches (as `datamodules.spine_end`); returns
    class probabilities (softmax, in `classes` order). class_prior: None in checkpoints trained fully balanced.
    Test-time averaging: the probabilities are the mean over patch sides scaled by each of `scales`
    and, with `hflip`, their left-right mirrors (training flips left-right too); one pass is
    `scales=(1.0,), hflip=False`."""

    role = "classifier"
    settings = ("classes", "patch", "input_size", "class_prior")

    def __init__(
        self,
        model,
        classes: Sequence[str],
        patch: Mapping,
        input_size: int,
        class_prior: Sequence[float] | None = None,
        batch_size: int = 64,
        scales: Sequence[float] = (1.0,),
        hflip: bool = True,
    ):
        super().__init__(model)
        if not scales or min(scales) <= 0:
            raise ValueError(f"spine_end scales must be positive side factors, not {list(scales)}")
        self.scales, self.hflip = [float(s) for s in scales], bool(hflip)
        self.classes = list(classes)
        self.class_prior = None if class_prior is None else list(class_prior)
        self.patch = dict(patch)
        self.input_size = input_size
        self.batch_size = batch_size

    def classify(self, requests: Sequence[Patches]) -> list[np.ndarray]:
        counts = [len(r.centres) for r in requests]
        probabilities = []
        for scale in self.scales:
            patches = np.concatenate(
                [self.cut(r.film, r.centres, [max(1, round(side * scale)) for side in r.sides]) for r in requests]
            )
            probabilities.append(self.infer(patches))
            if self.hflip:
                probabilities.append(self.infer(np.ascontiguousarray(patches[:, :, ::-1])))
        return split(np.mean(probabilities, axis=0), counts)

    def cut(self, film: np.ndarray, centres: np.ndarray, sides: Sequence[int]) -> np.ndarray:
        patches = [classifier_patch(film, c, side, self.input_size) for c, side in zip(centres, sides)]
        return np.stack(patches).reshape(-1, self.input_size, self.input_size)

    def infer(self, patches: np.ndarray) -> np.ndarray:
        """(N, len(classes)) probabilities of uint8 patches (N, S, S)."""

        def forward(batch: torch.Tensor) -> np.ndarray:
            return self.model(batch).float().softmax(dim=1).double().cpu().numpy()

        return self.batched(patches, self.batch_size, forward, (len(self.classes),))
