"""Mask R-CNN samples: whole films scaled to a long side, one mask, box and label per vertebra."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np
import torch
from hydra.utils import instantiate
from torch.utils.data import Dataset

from datamodules.base import RecordDataModule
from spinefm.data.patches import scale_image
from spinefm.data.problems import DataError
from spinefm.data.record import ImageRecord, Vertebra
from spinefm.models.maskrcnn import class_levels, grey_to_input
from spinefm.progress import progress

log = logging.getLogger(__name__)


@dataclass
class DetectionSample:
    """A film scaled for training: uint8 image, vertebra masks (stored cropped) and labels."""

    id: str
    image: np.ndarray
    instances: list[Vertebra]
    labels: np.ndarray


def scale_record(record: ImageRecord, image_size: int, levels: list[str] | None, min_mask_area: int) -> DetectionSample:
    """The record's image resized so its long side is `image_size`, with its vertebrae rasterised
    at that scale; masks smaller than `min_mask_area` pixels there are dropped."""
    pixels = record.load_image()
    height, width = pixels.shape
    image = scale_image(pixels, image_size)
    shape = image.shape
    instances, labels = [], []
    for vertebra in record.vertebrae:
        mask = scaled_mask(vertebra, (height, width), shape)
        if mask.sum() < min_mask_area:
            continue
        instances.append(Vertebra.from_full_mask(vertebra.level, mask))
        labels.append(_label(record.id, vertebra.level, levels))
    return DetectionSample(record.id, image, instances, np.asarray(labels, dtype=np.int64))


def scaled_mask(vertebra: Vertebra, original: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """A vertebra's full mask on a `shape` grid covering an image of `original` (height, width):
    polygons are rasterised at the new scale, masks resampled (area-weighted, kept where >= half)."""
    scale_y, scale_x = shape[0] / original[0], shape[1] / original[1]
    if vertebra.polygon is not None:  # pixel centres sit at integers: scale about the pixel edges
        polygon = (vertebra.polygon + 0.5) * (scale_x, scale_y) - 0.5
        return Vertebra(vertebra.level, polygon=polygon).to_mask(*shape)
    full = vertebra.to_mask(*original).astype(np.float32)
    interpolation = cv2.INTER_AREA if scale_y < 1 else cv2.INTER_LINEAR
    return cv2.resize(full, shape[::-1], interpolation=interpolation) >= 0.5


def _label(image_id: str, level: str, levels: list[str] | None) -> int:
    if levels is None:
        return 1
    if level not in levels:
        raise ValueError(
            f"{image_id}: level {level} lies outside the dataset's level range {levels[0]}..{levels[-1]}; "
            "fix first_level / last_level in the dataset config or use class_mode: single"
        )
    return levels.index(level) + 1


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy float boxes of (N, H, W) masks; x1, y1 exclusive, so one pixel has size 1."""
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, mask in enumerate(masks):
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        boxes[i] = cols[0], rows[0], cols[-1] + 1, rows[-1] + 1
    return boxes


class DetectionDataset(Dataset):
    """(image (3, H, W) float in [0, 1], target {boxes, labels, masks}) in torchvision's format.

    With `augment`, boxes are recomputed from the augmented masks and instances left with fewer
    than `min_mask_area` pixels are dropped.
    """

    def __init__(self, samples: list[DetectionSample], augment: A.Compose | None = None, min_mask_area: int = 1):
        self.samples = samples
        self.augment = augment
        self.min_mask_area = min_mask_area

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        sample = self.samples[index]
        height, width = sample.image.shape
        image, labels = sample.image, sample.labels
        masks = np.zeros((len(sample.instances), height, width), np.uint8)
        for i, vertebra in enumerate(sample.instances):
            masks[i] = vertebra.to_mask(height, width)
        if self.augment is not None:
            # albumentations keeps its own random state: reseed from torch, which is seeded per worker
            self.augment.set_random_seed(int(torch.randint(2**31 - 1, ()).item()))
            if len(masks):
                out = self.augment(image=image, masks=masks)
                masks = np.asarray(out["masks"], dtype=np.uint8)
                keep = masks.reshape(len(masks), -1).sum(axis=1) >= self.min_mask_area
                masks, labels = masks[keep], labels[keep]
            else:
                out = self.augment(image=image)
            image = out["image"]
        target = {
            "boxes": torch.from_numpy(mask_boxes(masks)),
            "labels": torch.from_numpy(labels),
            "masks": torch.from_numpy(masks),
        }
        return grey_to_input(image), target


def detection_collate(batch):
    """(images, targets) as tuples: detection models take lists of differently sized images."""
    return tuple(zip(*batch))


class MaskRCNNDataModule(RecordDataModule):
    """Films cached once at setup at the training scale (long side `image_size`).

    class_mode: single (every vertebra label 1) | per_level (label = index of the level in the
    dataset's first_level..last_level range + 1). augmentations: albumentations transforms as
    Hydra dicts, applied to training films only (an empty list: none, the original recipe).
    """

    collate_fn = staticmethod(detection_collate)

    def __init__(
        self,
        dataset,
        image_size: int = 1333,
        class_mode: str = "single",
        min_mask_area: int = 4,
        augmentations: list[dict] | None = None,
        **kwargs,
    ):
        super().__init__(dataset, **kwargs)
        self.image_size = image_size
        self.class_mode = class_mode
        self.levels = class_levels(class_mode, self.dataset_cfg.get("first_level"), self.dataset_cfg.get("last_level"))
        self.min_mask_area = min_mask_area
        self.augmentations = list(augmentations or [])

    @property
    def num_classes(self) -> int:
        return 2 if self.levels is None else len(self.levels) + 1

    def build_augment(self) -> A.Compose | None:
        if not self.augmentations:
            return None
        return A.Compose([instantiate(t, _convert_="all") for t in self.augmentations])

    def build_dataset(self, records: list[ImageRecord], train: bool) -> Dataset:
        split = "train" if train else "val"
        samples = []
        for record in progress(records, f"scaling {split} films", unit="films"):
            try:
                samples.append(scale_record(record, self.image_size, self.levels, self.min_mask_area))
            except DataError as error:
                self.skipped.setdefault(split, []).append(str(error.problem))
                log.warning("skipped %s", error.problem)
        return DetectionDataset(samples, self.build_augment() if train else None, self.min_mask_area)
