"""Point-predictor samples: windows of four consecutive levels, read in both directions."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.base import RecordDataModule
from spinefm.data.levels import are_adjacent
from spinefm.data.record import ImageRecord


def centroid_windows(record: ImageRecord, image_size) -> list[dict]:
    """Every run of 4 consecutive levels gives two samples: 3 -> next going down, and reversed going up.

    Windows spanning a missing level are skipped. `target_height` is the target vertebra's extent
    along the step direction, so errors can be reported in vertebra heights.
    """
    vertebrae = record.vertebrae
    centroids = [v.centroid() for v in vertebrae]
    samples = []
    for i in range(len(vertebrae) - 3):
        run = vertebrae[i : i + 4]
        if not all(are_adjacent(a.level, b.level) for a, b in zip(run, run[1:])):
            continue
        points = np.stack(centroids[i : i + 4])
        for order, target in ((points, run[3]), (points[::-1], run[0])):
            samples.append(
                {
                    "window": torch.as_tensor(order[:3].copy(), dtype=torch.float32),
                    "target": torch.as_tensor(order[3].copy(), dtype=torch.float32),
                    "image_size": torch.tensor(image_size, dtype=torch.float32),
                    "target_height": torch.tensor(_extent_along(target, order[3] - order[2]), dtype=torch.float32),
                }
            )
    return samples


def _extent_along(vertebra, direction) -> float:
    direction = direction / max(np.linalg.norm(direction), 1e-9)
    if vertebra.polygon is not None:
        points = vertebra.polygon
    else:
        rows, cols = np.nonzero(vertebra.mask)
        points = np.stack([cols + vertebra.offset[0], rows + vertebra.offset[1]], axis=1).astype(float)
    projection = points @ direction
    return float(projection.max() - projection.min())


class WindowDataset(Dataset):
    def __init__(self, samples: list[dict], flip_probability: float = 0.0):
        self.samples = samples
        self.flip_probability = flip_probability

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        if self.flip_probability and torch.rand(()).item() < self.flip_probability:  # torch: seeded per worker
            width = sample["image_size"][0] - 1  # mirror x -> (W - 1) - x
            sample = dict(sample)
            for key in ("window", "target"):
                flipped = sample[key].clone()
                flipped[..., 0] = width - flipped[..., 0]
                sample[key] = flipped
        return sample


class PointPredictorDataModule(RecordDataModule):
    def __init__(self, dataset, flip_probability: float = 0.5, **kwargs):
        super().__init__(dataset, **kwargs)
        self.flip_probability = flip_probability

    def build_dataset(self, records: list[ImageRecord], train: bool) -> Dataset:
        samples = []
        for record in records:
            height, width = record.image_shape()
            samples.extend(centroid_windows(record, (width, height)))
        return WindowDataset(samples, self.flip_probability if train else 0.0)
