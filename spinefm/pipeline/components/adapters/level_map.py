"""The level mapper role: per film, the probabilities of the level at each band of its rows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from spinefm.data.level_rows import resize_film
from spinefm.models.level_map import ROW_STRIDE
from spinefm.pipeline.components.adapters.base import Adapter
from spinefm.pipeline.components.roles import register_adapter


@register_adapter("level_map")
class LevelMapAdapter(Adapter):
    """The level map on whole films resized to `input_size` (as `datamodules.level_map`); softmax per
    row, averaged with the mirrored film's (training mirrors too) unless `hflip` is False."""

    role = "level_mapper"
    settings = ("names", "input_size")

    def __init__(self, model, names: Sequence[str], input_size: Sequence[int], batch_size: int = 8, hflip: bool = True):
        super().__init__(model)
        self.names = list(names)
        self.input_size = tuple(int(s) for s in input_size)
        self.batch_size, self.hflip = batch_size, bool(hflip)

    def map_levels(self, films: Sequence[np.ndarray]) -> list[np.ndarray]:
        inputs = np.stack([resize_film(film, self.input_size) for film in films])
        shape = (self.input_size[0] // ROW_STRIDE, len(self.names))
        probabilities = self.batched(inputs, self.batch_size, self._forward, shape)
        if self.hflip:
            mirrored = np.ascontiguousarray(inputs[:, :, ::-1])
            probabilities = (probabilities + self.batched(mirrored, self.batch_size, self._forward, shape)) / 2
        return list(probabilities.astype(np.float64))

    def _forward(self, batch: torch.Tensor) -> np.ndarray:
        return self.model(batch).float().softmax(dim=-1).cpu().numpy()
