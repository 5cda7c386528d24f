"""Level map samples: whole films at a fixed size and the level at each of their rows.

Films are resized once at setup to `cache_scale` x `input_size` (uint8, in memory) with their
vertebrae's centroids. Training cuts a random number of rows off the top and the bottom (up to
`crop` of the film; sometimes into the spine, so that where a film ends never names a level), resizes
to `input_size`, mirrors left-right and varies contrast, brightness and gamma; validation takes the
whole film. Targets: `spinefm.data.level_rows.row_targets`, one per ROW_STRIDE rows of the input.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.base import RecordDataModule
from spinefm.data.level_rows import level_map_names, resize_film, row_targets
from spinefm.data.problems import DataError
from spinefm.data.record import ImageRecord
from spinefm.models.level_map import ROW_STRIDE
from spinefm.progress import progress

log = logging.getLogger(__name__)


@dataclass
class FilmSample:
    """A film resized for the level map, with its vertebrae's centroids there and their levels."""

    id: str
    image: np.ndarray
    centroids: np.ndarray
    levels: list[str]


def film_sample(record: ImageRecord, size: tuple[int, int]) -> FilmSample:
    pixels = record.load_image()
    height, width = pixels.shape
    centroids = np.array([v.centroid() for v in record.vertebrae], dtype=np.float64).reshape(-1, 2)
    scale = np.array([size[1] / width, size[0] / height])
    return FilmSample(record.id, resize_film(pixels, size), centroids * scale, list(record.levels))


class LevelMapDataset(Dataset):
    """{image (1, H, W) float in [0, 1], targets (H / ROW_STRIDE,) long, centres (same,) bool: the
    rows that hold a vertebra's centroid}; `augment` {crop, spine_cut, hflip, contrast, brightness,
    gamma} or None."""

    def __init__(self, samples: list[FilmSample], names: list[str], input_size: Sequence[int], augment: Mapping | None):
        self.samples, self.names = samples, names
        self.input_size = tuple(int(s) for s in input_size)
        self.augment = dict(augment) if augment else None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        image, centroids = sample.image, sample.centroids.copy()
        if self.augment is not None:
            rng = np.random.default_rng(int(torch.randint(2**31 - 1, ()).item()))  # seeded per worker by torch
            image, centroids = self._crop(image, centroids, rng)
        film = resize_film(image, self.input_size).astype(np.float32) / 255.0
        height = self.input_size[0]
        ys = centroids[:, 1] * height / image.shape[0]
        if self.augment is not None:
            film = self._intensity(film, rng)
            if rng.random() < self.augment.get("hflip", 0.0):
                film = np.ascontiguousarray(film[:, ::-1])
        rows = height // ROW_STRIDE
        centres = np.zeros(rows, bool)
        centres[np.clip((ys / ROW_STRIDE).astype(int), 0, rows - 1)] = True
        return {
            "image": torch.from_numpy(film.astype(np.float32))[None],
            "targets": torch.from_numpy(row_targets(ys, sample.levels, self.names, height, rows)),
            "centres": torch.from_numpy(centres),
        }

    def _crop(self, image: np.ndarray, centroids: np.ndarray, rng: np.random.Generator):
        """Rows cut off the top and the bottom: up to `crop` of the film, past the spine, or with
        probability `spine_cut` anywhere within that share."""
        height = image.shape[0]
        limit = self.augment.get("crop", 0.0) * height
        ys = centroids[:, 1]
        top = rng.uniform(0, min(limit, max(ys.min(), 0)))
        bottom = rng.uniform(0, min(limit, max(height - ys.max(), 0)))
        if rng.random() < self.augment.get("spine_cut", 0.0):
            top = rng.uniform(0, limit)
        if rng.random() < self.augment.get("spine_cut", 0.0):
            bottom = rng.uniform(0, limit)
        first, last = int(top), height - int(bottom)
        centroids[:, 1] -= first
        return image[first:last], centroids

    def _intensity(self, film: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        contrast = 1.0 + rng.uniform(-1, 1) * self.augment.get("contrast", 0.0)
        brightness = rng.uniform(-1, 1) * self.augment.get("brightness", 0.0)
        gamma = np.exp(rng.uniform(-1, 1) * np.log1p(self.augment.get("gamma", 0.0)))
        return np.clip((film - 0.5) * contrast + 0.5 + brightness, 0.0, 1.0) ** gamma


class LevelMapDataModule(RecordDataModule):
    """Whole films for the level map; its classes (`names`) follow the dataset's level range and
    end levels, as the spine-end classifier's level classes do."""

    def __init__(
        self,
        dataset,
        input_size: Sequence[int] = (512, 256),
        cache_scale: float = 1.25,
        augment: Mapping | None = None,
        **kwargs,
    ):
        super().__init__(dataset, **kwargs)
        self.input_size = tuple(int(s) for s in input_size)
        if any(s % 32 for s in self.input_size):
            raise ValueError(f"level_map input_size (height, width) must be multiples of 32, not {list(input_size)}")
        self.cache_size = tuple(round(s * cache_scale) for s in self.input_size)
        self.augment = augment
        self.names = level_map_names(
            self.dataset_cfg.get("first_level"),
            self.dataset_cfg.get("last_level"),
            self.dataset_cfg.get("end_levels") or {},
        )

    def build_dataset(self, records: list[ImageRecord], train: bool) -> Dataset:
        split = "train" if train else "val"
        samples = []
        for record in progress(records, f"resizing {split} films", unit="films"):
            try:
                samples.append(film_sample(record, self.cache_size if train else self.input_size))
            except DataError as error:
                self.skipped.setdefault(split, []).append(str(error.problem))
                log.warning("skipped %s", error.problem)
        return LevelMapDataset(samples, self.names, self.input_size, self.augment if train else None)
