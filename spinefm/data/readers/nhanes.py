"""NHANES II lateral cervical and lumbar films, as SpineFM prepared them (full-image masks).

Layout:
    <root>/imgs/<ID>.jpg                     8-bit greyscale JPEG (.png / .dcm also found)
    <root>/gts/<ID>_<LEVEL>.npy              one full-image binary mask per vertebra (uint8 0/1)
    <root>/data_split/{train,val,test}.txt   one ID per line (the first 6 characters are the id)

IDs like C00166 (cervical film: C2..C7, sometimes T1) or L00179 (lumbar film: T12..S1); the view
comes from the first letter. Without a data_split folder the images are split by seeded fractions,
keeping films that share a number (C00166, L00166) in one split.
"""

from __future__ import annotations

import re

from spinefm.data.readers.mask_folders import MaskFolderReader

FILM_VIEWS = {"C": "lateral_cervical", "L": "lateral_lumbar"}
_NUMBERED_ID = re.compile(r"^[A-Za-z](\d+)$")


class NhanesReader(MaskFolderReader):
    source = "nhanes"
    mask_suffix = ".npy"
    id_length = 6

    def __init__(self, root, split: str = "train", **kwargs):
        super().__init__(root, split, **kwargs)

    def _view(self, image_id: str) -> str | None:
        return FILM_VIEWS.get(image_id[:1].upper())

    def _group(self, image_id: str) -> str | None:
        match = _NUMBERED_ID.match(image_id)
        return f"nhanes/{match.group(1)}" if match else None
