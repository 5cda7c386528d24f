"""The synthetic dataset's reader: phantoms generated on the fly from seeds, or read back as COCO
from a folder `spinefm.data.export` wrote."""

from __future__ import annotations

from collections.abc import Mapping

from spinefm.data.export import DISK_ANNOTATIONS
from spinefm.data.readers.base import SPLITS, Entry, Reader
from spinefm.data.readers.coco import CocoReader
from spinefm.data.record import ImageRecord
from spinefm.synthetic.phantom import PhantomConfig, generate_phantom

SPLIT_SEED_STRIDE = 1_000_000  # seeds of different splits never meet


class GeneratedReader(Reader):
    """`num_images[split]` phantoms per split; image i of a split is always the same phantom."""

    def __init__(
        self, split: str = "train", num_images: Mapping[str, int] | None = None, seed: int = 0, phantom=None, **kwargs
    ):
        self.num_images = dict(num_images or {"train": 64, "val": 16, "test": 16})
        self.seed = seed
        self.phantom = phantom if isinstance(phantom, PhantomConfig) else PhantomConfig(**dict(phantom or {}))
        super().__init__(None, split, **kwargs)

    def _index(self) -> list[Entry]:
        entries = []
        for offset, split in enumerate(SPLITS):
            for i in range(self.num_images.get(split, 0)):
                phantom_seed = self.seed * len(SPLITS) * SPLIT_SEED_STRIDE + offset * SPLIT_SEED_STRIDE + i
                entries.append(Entry(f"synthetic_{split}_{i:05d}", split=split, payload=phantom_seed))
        return entries

    def _build(self, entry: Entry) -> ImageRecord:
        return generate_phantom(entry.payload, self.phantom, image_id=entry.id)


def synthetic_reader(root=None, split: str = "train", num_images=None, seed: int = 0, phantom=None, **kwargs) -> Reader:
    """Generated phantoms when `root` is None; otherwise a folder written by `spinefm.data.export`."""
    if root is None:
        return GeneratedReader(split, num_images=num_images, seed=seed, phantom=phantom, **kwargs)
    return CocoReader(root, split, annotations=DISK_ANNOTATIONS, image_dir="images", **kwargs)
