"""Spine-end classifier samples: patches at vertebra centroids and at background points around the spine.

Patches are cut once at setup (exact crops, zero fill outside the image), resized to `input_size`
and kept in memory as uint8; training adds augmentations and draws rare classes more often
(`balance`: 0 as the data is, 1 every class equally often). The class frequencies it trains with
(`class_prior`) and the number of levels between the ends per view (`level_counts`) go into the
checkpoint for the pipeline's decoder.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from datamodules.base import RecordDataModule
from spinefm.data.classes import levels_between_ends, sample_class, target_classes, view_end_levels
from spinefm.data.intensity import to_uint8
from spinefm.data.levels import normalize_level, offset_level
from spinefm.data.patches import classifier_patch, median_spacing, patch_side
from spinefm.data.problems import DataError
from spinefm.data.record import ImageRecord
from spinefm.progress import progress

log = logging.getLogger(__name__)


def vertebra_size(record: ImageRecord) -> float:
    """sqrt of the median vertebra area, in pixels: the unit of jitter and ring widths."""
    return float(np.sqrt(np.median([v.area() for v in record.vertebrae])))


def background_ring(record: ImageRecord, inner: float, outer: float) -> np.ndarray:
    """(H, W) bool: pixels whose distance to the nearest vertebra is in (inner, outer] vertebra sizes.

    SpineFM blurred the union of the masks, thresholded it and subtracted the union; a distance
    transform gives the same ring with its width set exactly. `inner` > 0 keeps the centres off the
    discs between vertebrae.
    """
    height, width = record.image_shape()
    union = np.zeros((height, width), bool)
    for vertebra in record.vertebrae:
        union |= vertebra.to_mask(height, width)
    distance = cv2.distanceTransform((~union).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    size = vertebra_size(record)
    return (distance > inner * size) & (distance <= outer * size)


def beyond_the_ends(
    record: ImageRecord, end_levels: Mapping, spacings: Sequence[float]
) -> list[tuple[np.ndarray, str | None]]:
    """(point, level) `spacings` centroid steps past each of the view's end landmarks that the record
    annotates as its first (top) or last (bottom) level, continuing the step from its neighbour; the
    level lies a whole number of steps past the landmark (C7 one above T1), else it is None."""
    ends = view_end_levels(end_levels, record.view)
    levels, points = record.levels, []
    for end, index, neighbour, sign in (("top", 0, 1, -1), ("bottom", len(levels) - 1, len(levels) - 2, 1)):
        if len(levels) < 2 or not ends.get(end) or levels[index] != normalize_level(ends[end]):
            continue
        centroid = record.vertebrae[index].centroid()
        step = centroid - record.vertebrae[neighbour].centroid()
        for k in spacings:
            level = offset_level(levels[index], sign * round(k)) if float(k).is_integer() else None
            points.append((centroid + k * step, level))
    return points


def sample_background(
    record: ImageRecord, count: int, inner: float, outer: float, rng: np.random.Generator
) -> np.ndarray:
    """(n <= count, 2) background centres as (x = column, y = row), drawn uniformly from the ring."""
    ring = background_ring(record, inner, outer)
    pixels = np.flatnonzero(ring)
    if pixels.size == 0:
        return np.zeros((0, 2))
    chosen = rng.choice(pixels, size=min(count, pixels.size), replace=False)
    rows, cols = np.unravel_index(chosen, ring.shape)
    return np.stack([cols, rows], axis=1).astype(float)


def edge_cut(record: ImageRecord, spacing: float, cut: Mapping, rng: np.random.Generator) -> tuple[int, int]:
    """Rows [top, bottom) of the film a training sample sees: with probability `cut.p`, the film is cut
    off `cut.top` (`cut.bottom`) centroid spacings, drawn uniformly from that range, above its first
    (below its last) vertebra, where that lies inside it, as films cropped closer to the ends are."""
    height = record.image_shape()[0]
    if rng.random() >= cut["p"]:
        return 0, height
    first, last = record.vertebrae[0].centroid()[1], record.vertebrae[-1].centroid()[1]
    top = int(round(first - rng.uniform(*cut["top"]) * spacing))
    bottom = int(round(last + rng.uniform(*cut["bottom"]) * spacing))
    return max(0, top), min(height, max(bottom, top + 1))


def build_augment(config: Mapping | None) -> A.Compose | None:
    """Training augmentations from config entries (each optional; null / {} for none).
    No vertical flip: it would swap the top and bottom ends."""
    config = dict(config or {})
    transforms = []
    if config.get("hflip"):
        transforms.append(A.HorizontalFlip(p=config["hflip"]))
    if affine := config.get("affine"):
        transforms.append(
            A.Affine(
                scale=tuple(affine["scale"]),
                translate_percent=(-affine["translate"], affine["translate"]),
                rotate=(-affine["rotate"], affine["rotate"]),
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                p=affine["p"],
            )
        )
    if bc := config.get("brightness_contrast"):
        transforms.append(
            A.RandomBrightnessContrast(brightness_limit=bc["brightness"], contrast_limit=bc["contrast"], p=bc["p"])
        )
    if noise := config.get("noise"):
        transforms.append(A.GaussNoise(std_range=tuple(noise["std"]), p=noise["p"]))
    return A.Compose(transforms) if transforms else None


class PatchDataset(Dataset):
    """uint8 patches (N, S, S) and class indices (N,); items {"image": (1, S, S) float in [0, 1], "label"}."""

    def __init__(self, patches: np.ndarray, labels: np.ndarray, augment: A.Compose | None = None):
        self.patches = patches
        self.labels = labels
        self.augment = augment
        self._augment_seed = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        patch = self.patches[index]
        if self.augment is not None:
            # torch's per-process seed: seeded runs repeat, and DataLoader workers differ.
            seed = torch.initial_seed() % 2**32
            if seed != self._augment_seed:
                self.augment.set_random_seed(seed)
                self._augment_seed = seed
            patch = self.augment(image=patch)["image"]
        image = torch.from_numpy(np.ascontiguousarray(patch)).float().div_(255.0).unsqueeze(0)
        return {"image": image, "label": torch.tensor(int(self.labels[index]))}


def class_frequencies(labels: np.ndarray, num_classes: int, balance: float) -> np.ndarray:
    """How often each class is drawn per epoch (sums to 1) when a sample of a class with n samples
    weighs n ** -balance: 0 draws the data as it is, 1 every class equally often."""
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    drawn = np.where(counts > 0, counts ** (1.0 - balance), 0.0)
    return drawn / drawn.sum()


def balanced_sampler(labels: np.ndarray, num_classes: int, seed: int, balance: float = 1.0) -> WeightedRandomSampler:
    """Draws len(labels) samples per epoch, with the class frequencies of `class_frequencies`."""
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    weights = counts[labels] ** -balance
    generator = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(
        torch.as_tensor(weights, dtype=torch.double), len(labels), replacement=True, generator=generator
    )


class SpineEndDataModule(RecordDataModule):
    """Classes come from `targets` and the dataset's end levels and level range (see
    `spinefm.models.spine_end.target_classes`); the stage config hands the same to the module, so
    both agree on class indices.

    patch: {mode: fixed | spacing, side_px, spacing_factor} (sides in original pixels).
    positive_jitter: positives' centres move up to this many vertebra sizes in x and y (training only).
    ring: {inner, outer}: background centres' distance from the nearest vertebra, in vertebra sizes.
    beyond_ends: more centres this many centroid spacings past each end landmark a film annotates,
    along the spine (where a walk overshoots): background with end targets; with level targets the
    level a whole number of spacings past (C7 above T1, S1 below L5) where it is a class.
    """

    def __init__(
        self,
        dataset,
        targets: str = "ends",
        input_size: int = 224,
        patch: Mapping | None = None,
        positive_jitter: float = 0.1,
        negatives_per_image: int = 8,
        ring: Mapping | None = None,
        beyond_ends: Sequence[float] = (),
        balance: float = 1.0,
        augment: Mapping | None = None,
        edge_cut: Mapping | None = None,
        **kwargs,
    ):
        super().__init__(dataset, **kwargs)
        self.input_size = input_size
        self.patch = {"mode": "spacing", "side_px": 512, "spacing_factor": 3.0, **dict(patch or {})}
        self.positive_jitter = positive_jitter
        self.negatives_per_image = negatives_per_image
        self.ring = {"inner": 0.25, "outer": 1.0, **dict(ring or {})}
        self.beyond_ends = list(beyond_ends)
        if not 0.0 <= balance <= 1.0:
            raise ValueError(
                f"spine_end balance must lie in [0, 1] (0: as the data is, 1: every class equally often), not {balance}"
            )
        self.balance = balance
        self.augment = augment
        self.edge_cut = dict(edge_cut) if edge_cut else None
        self.end_levels = dict(self.dataset_cfg.get("end_levels") or {})
        self.classes = target_classes(
            targets, self.end_levels, self.dataset_cfg.get("first_level"), self.dataset_cfg.get("last_level")
        )
        self.level_counts: dict[str, dict[int, int]] = {}  # the decoder's count prior, from the training films
        self.class_prior: list[float] | None = None  # class frequencies as drawn in training

    def record_samples(
        self, record: ImageRecord, train: bool, rng: np.random.Generator
    ) -> tuple[list[np.ndarray], list[int]]:
        """Patches and class indices of one image: one per vertebra (none for a level the classes leave
        out), `negatives_per_image` around the spine and those `beyond_ends` that lie on the film."""
        if not record.vertebrae:
            return [], []
        spacing = median_spacing(record)
        side = patch_side(self.patch, spacing)
        if side is None:
            log.warning("%s: one vertebra, no centroid spacing for the patch size; skipped", record.id)
            return [], []
        image8 = to_uint8(record.load_image())
        cutting = train and self.edge_cut and spacing is not None
        top, bottom = edge_cut(record, spacing, self.edge_cut, rng) if cutting else (0, image8.shape[0])
        if (top, bottom) != (0, image8.shape[0]):  # zeros past the cut, as patches read a film's edge
            image8 = image8.copy()
            image8[:top], image8[bottom:] = 0, 0
        jitter = self.positive_jitter * vertebra_size(record) if train else 0.0
        vertebrae = [(v.centroid() + rng.uniform(-jitter, jitter, 2), v.level) for v in record.vertebrae]
        ring = sample_background(record, self.negatives_per_image, self.ring["inner"], self.ring["outer"], rng)
        beyond = [
            (c + rng.uniform(-jitter, jitter, 2), lv)
            for c, lv in beyond_the_ends(record, self.end_levels, self.beyond_ends)
        ]
        centres, labels = [], []
        width = record.image_shape()[1]
        for centre, level in [*vertebrae, *((c, None) for c in ring), *beyond]:
            name = sample_class(level, record.view, self.classes, self.end_levels)
            on_film = 0 <= centre[0] < width and top <= centre[1] < bottom  # past a cut-off film: nothing to learn
            if name is not None and on_film:
                centres.append(centre)
                labels.append(self.classes.index(name))
        return [classifier_patch(image8, c, side, self.input_size) for c in centres], labels

    def build_dataset(self, records: list[ImageRecord], train: bool) -> Dataset:
        split = "train" if train else "val"
        rng = np.random.default_rng((self.seed, int(train)))
        patches, labels = [], []
        for record in progress(records, f"spine_end {split} patches", unit="films"):
            try:
                record_patches, record_labels = self.record_samples(record, train, rng)
            except DataError as error:  # an image whose pixels cannot be read
                self.skipped.setdefault(split, []).append(str(error.problem))
                log.warning("skipped %s", error.problem)
                continue
            patches += record_patches
            labels += record_labels
            count = levels_between_ends(record.levels, record.view, self.end_levels) if train else None
            if count is not None:
                films = self.level_counts.setdefault(str(record.view), {})
                films[count] = films.get(count, 0) + 1
        labels = np.asarray(labels, dtype=np.int64)
        counts = np.bincount(labels, minlength=len(self.classes))
        log.info("spine_end %s samples: %s", split, dict(zip(self.classes, counts.tolist())))
        if train:
            self.class_prior = class_frequencies(labels, len(self.classes), self.balance).tolist()
        patches = np.stack(patches) if patches else np.zeros((0, self.input_size, self.input_size), np.uint8)
        return PatchDataset(patches, labels, build_augment(self.augment) if train else None)

    def train_dataloader(self) -> DataLoader:
        if self.balance == 0:
            return super().train_dataloader()
        return self._loader(
            "train", sampler=balanced_sampler(self.datasets["train"].labels, len(self.classes), self.seed, self.balance)
        )
