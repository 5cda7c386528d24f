"""SpineFM's prepared layout, shared by NHANES II and CSXA: one full-image mask file per vertebra.

Layout:
    <root>/imgs/<ID>.jpg                     the radiograph (any suffix `find_image` knows)
    <root>/gts/<ID>_<LEVEL><mask suffix>     one full-image binary mask per vertebra
    <root>/data_split/{train,val,test}.txt   one ID per line (SpineFM reads the first N characters)

Subclasses say how a mask file is named and loaded and which view an id is; the rest is here.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from spinefm.data.image_io import IMAGE_SUFFIXES, find_image
from spinefm.data.levels import is_level, level_index, normalize_level
from spinefm.data.readers.base import SPLITS, Entry, Reader
from spinefm.data.record import ImageRecord, Vertebra

_COMMENT = re.compile(r"#.*")


class MaskFolderReader(Reader):
    """imgs/ + gts/<ID>_<LEVEL>.<ext> + data_split/*.txt; see the module docstring.

    Images listed in no split file are left out of every split (their ids are in `unlisted_ids`)
    when split files exist; without a data_split folder the base class splits by seeded fractions.
    """

    source = "mask_folders"  # meta["source"] of the records
    mask_suffix = ".npy"  # gts/<ID>_<LEVEL><mask_suffix>
    id_length: int | None = None  # split files: an unknown token longer than this is cut to it

    def __init__(self, root, split: str = "train", split_dir=None, **kwargs):
        self.split_dir = Path(split_dir).expanduser() if split_dir is not None else None
        self.unlisted_ids: list[str] = []
        super().__init__(root, split, **kwargs)

    # --- what subclasses change -------------------------------------------------------------
    def _load_mask(self, path: Path) -> np.ndarray:
        return np.load(path, allow_pickle=False)

    def _view(self, image_id: str) -> str | None:
        return None

    def _group(self, image_id: str) -> str | None:
        return None

    def _record_options(self) -> dict:
        """Extra ImageRecord arguments (e.g. auto_invert)."""
        return {}

    # --- index ------------------------------------------------------------------------------
    def _index(self) -> list[Entry]:
        return self._index_mask_folders()

    def _index_mask_folders(self) -> list[Entry]:
        root = self.require_root()
        if not (root / "imgs").is_dir() and not (root / "gts").is_dir():
            raise FileNotFoundError(f"{type(self).__name__}: no imgs/ or gts/ folder in {root}")
        image_ids = {p.stem for p in (root / "imgs").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES}
        masks: dict[str, list[tuple[str, Path]]] = defaultdict(list)
        for path in (root / "gts").glob(f"*{self.mask_suffix}"):
            stem = path.name[: -len(self.mask_suffix)]
            image_id, _, level = stem.rpartition("_")
            if not image_id:  # no underscore: an id without a level
                image_id, level = stem, ""
            masks[image_id].append((level, path))
        known = image_ids | set(masks)
        split_of = self._read_split_files(known)
        if split_of is None:
            ids, split_of = sorted(known), {}
        else:
            ids = sorted(split_of)
            self.unlisted_ids = sorted(known - set(split_of))
        return [
            Entry(
                id=image_id,
                group=self._group(image_id),
                split=split_of.get(image_id),
                payload=sorted(masks.get(image_id, []), key=_mask_sort_key),
            )
            for image_id in ids
        ]

    def _split_folder(self) -> Path:
        return self.split_dir if self.split_dir is not None else self.root / "data_split"

    def _read_split_files(self, known: set[str]) -> dict[str, str] | None:
        """id -> split from data_split/{train,val,test}.txt, or None when there is no such file.

        An id listed in two files keeps the first split in train, val, test order.
        """
        paths = {split: self._split_folder() / f"{split}.txt" for split in SPLITS}
        if not any(path.is_file() for path in paths.values()):
            return None
        split_of: dict[str, str] = {}
        for split, path in paths.items():
            if not path.is_file():
                continue
            for line in path.read_text(encoding="utf-8-sig").splitlines():
                image_id = self._split_line_id(line, known)
                if image_id:
                    split_of.setdefault(image_id, split)
        return split_of

    def _split_line_id(self, line: str, known: set[str]) -> str | None:
        fields = _COMMENT.sub("", line).split()
        if not fields:
            return None
        token = fields[0]
        if Path(token).suffix.lower() in (*IMAGE_SUFFIXES, ".txt", self.mask_suffix):
            token = Path(token).stem
        if token not in known and self.id_length and len(token) > self.id_length:
            token = token[: self.id_length]
        return token

    # --- one image --------------------------------------------------------------------------
    def _build(self, entry: Entry) -> ImageRecord:
        return self._build_from_masks(entry)

    def _build_from_masks(self, entry: Entry) -> ImageRecord:
        image_dir = self.root / "imgs"
        image_path = find_image(image_dir, entry.id)
        if image_path is None:
            raise self._fail("missing_image", entry, "no image file for this id", image_dir / f"{entry.id}.*")
        problems, loaded = [], []
        for level, path in entry.payload:
            if not is_level(level):
                message = f"unknown level {level!r} in the file name"
                problems.append(self._problem("unknown_level", entry, message, path))
                continue
            level = normalize_level(level)
            try:
                loaded.append((level, path, _as_2d(np.asarray(self._load_mask(path)))))
            except Exception as error:  # every loader failure is the same problem to the user
                message = f"cannot read mask: {error}"
                problems.append(self._problem("unreadable_annotation", entry, message, path, level))
        if not entry.payload:
            message = f"no gts/{entry.id}_<LEVEL>{self.mask_suffix} file"
            problems.append(self._problem("missing_annotation", entry, message, self.root / "gts"))
        # A mask must cover the image's pixel grid. The header gives the image's size without decoding
        # it; where PIL cannot read one (DICOM, broken file), the masks' most common shape stands in.
        reference, against = _header_size(image_path), "the image's"
        if reference is None and loaded:
            reference, against = Counter(m.shape for _, _, m in loaded).most_common(1)[0][0], "the other masks'"
        vertebrae = []
        for level, path, mask in loaded:
            if mask.shape != reference:
                message = f"mask shape {mask.shape} differs from {against} {reference}"
                problems.append(self._problem("unreadable_annotation", entry, message, path, level))
            else:
                vertebrae.append(Vertebra.from_full_mask(level, mask))
        return ImageRecord(
            entry.id,
            vertebrae,
            image_path=image_path,
            view=self._view(entry.id),
            meta={"source": self.source},
            problems=problems,
            **self._record_options(),
        )


def _mask_sort_key(item: tuple[str, Path]):
    """Known levels top to bottom, then unknown names."""
    level, path = item
    return (0, level_index(level), path.name) if is_level(level) else (1, 0, path.name)


def _as_2d(mask: np.ndarray) -> np.ndarray:
    """The mask as (H, W); a single-channel (H, W, 1) or (1, H, W) array is accepted."""
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    elif mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.ndim != 2 or min(mask.shape) == 0:
        raise ValueError(f"not a 2-D mask (shape {mask.shape})")
    if not (np.issubdtype(mask.dtype, np.number) or mask.dtype == bool):
        raise ValueError(f"mask of dtype {mask.dtype}, not numbers")
    return mask


def _header_size(image_path: Path) -> tuple[int, int] | None:
    """(height, width) from the image header without decoding the pixels; None where PIL cannot tell."""
    try:
        with Image.open(image_path) as image:
            width, height = image.size
    except Exception:  # DICOM or a broken file: load_image reports the latter
        return None
    return (height, width)
