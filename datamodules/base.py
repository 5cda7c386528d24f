"""Stage data modules: read a dataset's records once, derive the stage's samples from them."""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Mapping

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset, Sampler

from spinefm.data.factory import load_records
from spinefm.data.record import ImageRecord

MAX_AUTO_WORKERS = 8


def worker_count(num_workers: int | str) -> int:
    """DataLoader processes per loader: a number, or "auto": one per CPU this process may use, less
    one for the training loop, at most MAX_AUTO_WORKERS."""
    if num_workers == "auto":
        return max(0, min(MAX_AUTO_WORKERS, len(os.sched_getaffinity(0)) - 1))
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be a number >= 0 or 'auto', not {num_workers!r}")
    return num_workers


class RecordDataModule(L.LightningDataModule):
    """Builds `train` and `val` sample datasets from the records of a Hydra `dataset` config.

    Images that cannot be read are logged by name and skipped (counted in `self.skipped`).
    `max_images` ({split: n}) caps the records used, for quick runs. Loaders keep their worker
    processes from epoch to epoch and pin batches in page-locked memory where CUDA is available
    (`pin_memory` None); `num_workers`: see `worker_count`.
    """

    collate_fn = None  # torch's default; detection batches override it

    def __init__(
        self,
        dataset: Mapping,
        batch_size: int = 32,
        num_workers: int | str = 0,
        pin_memory: bool | None = None,
        max_images: Mapping[str, int] | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.dataset_cfg = dataset if isinstance(dataset, DictConfig) else OmegaConf.create(dict(dataset))
        self.batch_size = batch_size
        self.num_workers = worker_count(num_workers)
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.max_images = dict(max_images or {})
        self.seed = seed
        self.datasets: dict[str, Dataset] = {}
        self.skipped: dict[str, list[str]] = {}

    def load_records(self, split: str) -> list[ImageRecord]:
        records, self.skipped[split] = load_records(self.dataset_cfg, split, self.max_images.get(split))
        return records

    def setup(self, stage: str | None = None) -> None:
        for split in ("train", "val"):
            if split not in self.datasets:
                self.datasets[split] = self.build_dataset(self.load_records(split), train=split == "train")
                if len(self.datasets[split]) == 0:
                    raise ValueError(
                        f"{type(self).__name__}: no {split} samples from dataset {self.dataset_cfg.name} "
                        f"at {self.dataset_cfg.root}; run `python -m spinefm.data.check dataset=...` to see why"
                    )

    @abstractmethod
    def build_dataset(self, records: list[ImageRecord], train: bool) -> Dataset:
        """The stage's samples derived from records (augmented when `train`)."""

    def _loader(self, split: str, shuffle: bool = False, sampler: Sampler | None = None) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            collate_fn=self.collate_fn,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)
