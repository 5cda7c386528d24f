"""Med-SA samples: one square patch per vertebra, prompted with one point at the patch centre.

A patch is centred on the vertebra's ground-truth centroid; in training its centre moves by a
uniform jitter (a fraction of the patch side, drawn anew every read), while the prompt stays at the
patch centre, so the model learns from imperfect prompts as the pipeline gives them. The target is
that vertebra's mask in the same patch at the decoder's low-res size.

For speed each vertebra's context (the patch plus the largest jitter on every side) is cut once at
setup, exactly (`crop_patch`, zeros off the image), and kept as uint8 at `input_size` pixels per
patch side, or at the original resolution where patches are smaller than `input_size`; a jittered
patch is then a sub-crop of that cache.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

import albumentations as A
import numpy as np
import torch
from hydra.utils import instantiate
from torch.utils.data import Dataset

from datamodules.base import RecordDataModule
from spinefm.data.intensity import to_uint8
from spinefm.data.patches import crop_patch, median_spacing, patch_origin, patch_side, resize_square
from spinefm.data.problems import DataError
from spinefm.data.record import ImageRecord, Vertebra
from spinefm.progress import progress

log = logging.getLogger(__name__)

PROMPTS = ("point", "box", "both")
TARGETS = ("soft", "binary")


@dataclass
class VertebraContext:
    """A vertebra's context crop: image (uint8) and its mask (uint8, 255 = inside) in one square frame;
    an unjittered patch is the centred `patch` x `patch` part of it."""

    image: np.ndarray
    mask: np.ndarray
    patch: int


def cut_context(image8: np.ndarray, vertebra: Vertebra, side: int, input_size: int, jitter: float) -> VertebraContext:
    """The context of the side x side patch centred on the vertebra's centroid, with room for a
    jitter of `jitter` x side on every side, at min(1, input_size / side) x the original resolution."""
    margin = math.ceil(jitter * side)
    x0, y0 = patch_origin(vertebra.centroid(), side)
    origin, context = (x0 - margin, y0 - margin), side + 2 * margin
    image = crop_patch(image8, origin, context)
    height, width = image8.shape
    # Only the part of the outline inside the image: beyond it the patch is zero fill.
    mask = crop_patch(vertebra.to_mask(height, width).astype(np.uint8) * 255, origin, context)
    scale = min(1.0, input_size / side)
    cached = max(1, round(context * scale))
    return VertebraContext(resize_square(image, cached), resize_square(mask, cached), max(1, round(side * scale)))


def input_coordinates(xy, patch: int, input_size: int) -> np.ndarray:
    """Pixel coordinates (centres at integers, SAM's convention) in a `patch`-pixel crop -> in the
    crop resized to `input_size`."""
    return (np.asarray(xy, dtype=np.float64) + 0.5) * (input_size / patch) - 0.5


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """(x0, y0, x1, y1) of the first and last foreground pixels (inclusive, as MedSAM's boxes); None if empty."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return None
    return np.array([cols.min(), rows.min(), cols.max(), rows.max()], dtype=np.float64)


class VertebraPatchDataset(Dataset):
    """Items: image (1, S, S) float in [0, 1]; target (1, L, L) float in [0, 1]; point (2,) and/or
    box (4,) in input pixels (S = input_size, L = low_res_size).

    jitter: the patch centre moves uniformly by up to this fraction of its side in x and y (0: none).
    box_noise: each box edge moves uniformly by up to this fraction of the box's width / height.
    """

    def __init__(
        self,
        contexts: list[VertebraContext],
        input_size: int,
        low_res_size: int,
        prompt: str = "point",
        target: str = "soft",
        jitter: float = 0.0,
        box_noise: float = 0.0,
        augment: A.Compose | None = None,
    ):
        if prompt not in PROMPTS:
            raise ValueError(f"prompt must be one of {PROMPTS}, not {prompt!r}")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, not {target!r}")
        self.contexts = contexts
        self.input_size = input_size
        self.low_res_size = low_res_size
        self.prompt = prompt
        self.target = target
        self.jitter = jitter
        self.box_noise = box_noise
        self.augment = augment

    def __len__(self) -> int:
        return len(self.contexts)

    def patch_offset(self, context: VertebraContext) -> tuple[int, int]:
        """Top-left of the patch in the context: centred, moved by the jitter (drawn with torch's
        generator, which Lightning seeds and every DataLoader worker reseeds)."""
        room = context.image.shape[0] - context.patch
        shift = (
            torch.empty(2).uniform_(-self.jitter, self.jitter).numpy() * context.patch if self.jitter else np.zeros(2)
        )
        x, y = np.clip(np.round(room / 2 + shift), 0, room).astype(int)
        return int(x), int(y)

    def __getitem__(self, index: int) -> dict:
        context = self.contexts[index]
        x, y = self.patch_offset(context)
        size = context.patch
        image = context.image[y : y + size, x : x + size]
        mask = context.mask[y : y + size, x : x + size]
        if self.augment is not None:
            # albumentations keeps its own random state: reseed it from torch (seeded per worker)
            self.augment.set_random_seed(int(torch.randint(2**31 - 1, ()).item()))
            out = self.augment(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        target = resize_square(mask, self.low_res_size).astype(np.float32) / 255.0
        if self.target == "binary":
            target = (target >= 0.5).astype(np.float32)
        image = resize_square(np.ascontiguousarray(image), self.input_size)
        sample = {
            "image": torch.from_numpy(np.ascontiguousarray(image)).float().div_(255.0)[None],
            "target": torch.from_numpy(np.ascontiguousarray(target))[None],
        }
        if self.prompt in ("point", "both"):
            centre = (self.input_size - 1) / 2
            sample["point"] = torch.tensor([centre, centre], dtype=torch.float32)
        if self.prompt in ("box", "both"):
            sample["box"] = torch.as_tensor(self.box(mask, size), dtype=torch.float32)
        return sample

    def box(self, mask: np.ndarray, patch: int) -> np.ndarray:
        """The (augmented) mask's box in input pixels, with noise; the whole patch if the mask is empty."""
        box = mask_box(mask >= 128)  # at least half covered
        if box is None:
            return np.array([0.0, 0.0, self.input_size - 1, self.input_size - 1])
        box = input_coordinates(box.reshape(2, 2), patch, self.input_size).reshape(4)
        if self.box_noise:
            extent = np.tile(box[2:] - box[:2] + 1, 2)
            box = box + torch.empty(4).uniform_(-self.box_noise, self.box_noise).numpy() * extent
        return np.clip(box, 0, self.input_size - 1)


class MedSADataModule(RecordDataModule):
    """Med-SA patches from a dataset's records.

    patch: {mode: spacing | fixed, side_px, spacing_factor}: the side in original pixels, fixed or
    `spacing_factor` x the image's median centroid-to-centroid distance (images with one vertebra
    are skipped in spacing mode). input_size / low_res_size: the model's encoder input and decoder
    output sides; None takes them from the model being trained (`trainer.lightning_module.model`).
    prompt: point | box | both. target: soft (area-interpolated fraction) | binary (>= 0.5).
    jitter, box_noise: see `VertebraPatchDataset` (training only). augmentations: albumentations
    transforms (Hydra dicts) applied to each training patch and its mask together.
    """

    def __init__(
        self,
        dataset,
        patch: Mapping | None = None,
        input_size: int | None = None,
        low_res_size: int | None = None,
        prompt: str = "point",
        target: str = "soft",
        jitter: float = 0.1,
        box_noise: float = 0.1,
        augmentations: list[dict] | None = None,
        **kwargs,
    ):
        super().__init__(dataset, **kwargs)
        self.patch = {"mode": "spacing", "side_px": 600, "spacing_factor": 3.0, **dict(patch or {})}
        self.input_size = input_size
        self.low_res_size = low_res_size
        self.prompt = prompt
        self.target = target
        self.jitter = jitter
        self.box_noise = box_noise
        self.augmentations = list(augmentations or [])

    def setup(self, stage: str | None = None) -> None:
        if self.input_size is None or self.low_res_size is None:
            model = self.trainer.lightning_module.model if self.trainer is not None else None
            if model is None:
                raise ValueError(
                    "MedSADataModule needs input_size and low_res_size, or a Trainer running a MedSA model"
                )
            self.input_size = self.input_size or model.input_size
            self.low_res_size = self.low_res_size or model.low_res_size
        super().setup(stage)

    def record_contexts(self, record: ImageRecord, jitter: float) -> list[VertebraContext]:
        side = patch_side(self.patch, median_spacing(record))
        if side is None:
            log.warning("%s: one vertebra, no centroid spacing for the patch size; skipped", record.id)
            return []
        image8 = to_uint8(record.load_image())
        return [cut_context(image8, v, side, self.input_size, jitter) for v in record.vertebrae]

    def build_dataset(self, records: list[ImageRecord], train: bool) -> Dataset:
        split = "train" if train else "val"
        contexts = []
        for record in progress(records, f"medsa {split} patches", unit="films"):
            try:
                contexts += self.record_contexts(record, self.jitter if train else 0.0)
            except DataError as error:  # an image whose pixels cannot be read
                self.skipped.setdefault(split, []).append(str(error.problem))
                log.warning("skipped %s", error.problem)
        log.info("medsa %s: %d vertebra patches from %d images", split, len(contexts), len(records))
        augment = (
            A.Compose([instantiate(t, _convert_="all") for t in self.augmentations])
            if train and self.augmentations
            else None
        )
        return VertebraPatchDataset(
            contexts,
            self.input_size,
            self.low_res_size,
            prompt=self.prompt,
            target=self.target,
            jitter=self.jitter if train else 0.0,
            box_noise=self.box_noise if train else 0.0,
            augment=augment,
        )
