"""COCO instance segmentation: the route for a user's own annotations.

    <root>/<annotations>   one COCO JSON for all images, or one per split ({train: ..., val: ..., test: ...})
    <root>/<image_dir>/<file_name>

`annotations: auto` reads `<root>/annotations.json` when it exists, else one JSON per split from
`<root>/annotations/<split>.json` (the layout `python -m spinefm.data.export` writes).

Categories are level names (`L3`) or a generic vertebra category, whose instances get levels by
their order from top to bottom, counted from `first_level` (anchor top) or `last_level` (anchor
bottom). Polygons are read in COCO's pixel-edge convention and stored with pixel centres at
integers; RLE masks are decoded. Images may carry `view` and `spacing_mm` keys; an annotation's
`attributes.exact: false` marks an approximated outline.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from spinefm.data.levels import is_level, normalize_level, offset_level
from spinefm.data.readers.base import Entry, Reader
from spinefm.data.record import VIEWS, ImageRecord, Vertebra, crop_to_foreground

GENERIC_CATEGORIES = ("vertebra", "vertebrae", "vertebral body", "vertebral_body", "vb")
COCO_PIXEL_OFFSET = 0.5  # COCO pixel (0, 0) spans [0, 1); ours is centred at 0


class CocoReader(Reader):
    def __init__(
        self,
        root,
        split: str = "train",
        annotations="auto",
        image_dir: str = "images",
        view: str | None = None,
        first_level: str | None = None,
        last_level: str | None = None,
        level_anchor: str = "top",
        **kwargs,
    ):
        if level_anchor not in ("top", "bottom"):
            raise ValueError("level_anchor must be 'top' or 'bottom'")
        self.annotations = annotations
        self.image_dir = image_dir
        self.view = view
        self.first_level, self.last_level = first_level, last_level
        self.level_anchor = level_anchor
        super().__init__(root, split, **kwargs)

    def _index(self) -> list[Entry]:
        root = self.require_root()
        annotations = _resolve_annotations(root, self.annotations)
        if isinstance(annotations, Mapping):
            sources = [(s, root / path) for s, path in annotations.items() if self.split in ("all", s)]
        else:
            sources = [(None, root / annotations)]
        entries = []
        for split, path in sources:
            coco = _load_json(path)
            categories = {c["id"]: c["name"] for c in coco.get("categories", [])}
            by_image = defaultdict(list)
            for annotation in coco.get("annotations", []):
                by_image[annotation["image_id"]].append(annotation)
            for image in coco.get("images", []):
                image_id = str(image.get("id_name") or Path(image["file_name"]).stem)
                payload = (image, by_image.get(image["id"], []), categories, path)
                entries.append(Entry(image_id, group=image.get("patient_id"), split=split, payload=payload))
        return entries

    def _build(self, entry: Entry) -> ImageRecord:
        image, annotations, categories, json_path = entry.payload
        image_path = self.root / self.image_dir / image["file_name"]
        if not image_path.is_file():
            raise self._fail("missing_image", entry, f"image listed in {json_path.name} not found", image_path)
        record = ImageRecord(
            entry.id,
            [],
            image_path=image_path,
            view=image.get("view", self.view) if image.get("view", self.view) in VIEWS else None,
            spacing_mm=_spacing(image.get("spacing_mm")),
            meta={"source": "coco", "coco_image_id": image["id"]},
        )
        unlabelled = []
        for annotation in annotations:
            name = str(categories.get(annotation.get("category_id"), "")).strip()
            try:
                outline = _outline(annotation["segmentation"], image["height"], image["width"])
                outline["exact"] = bool(annotation.get("attributes", {}).get("exact", True))
            except (KeyError, TypeError, ValueError) as error:
                record.problems.append(
                    self._problem(
                        "unreadable_annotation", entry, f"annotation {annotation.get('id')}: {error}", json_path
                    )
                )
                continue
            if is_level(name):
                record.vertebrae.append(Vertebra(normalize_level(name), **outline))
            elif name.lower() in GENERIC_CATEGORIES:
                unlabelled.append(outline)
            else:
                record.problems.append(
                    self._problem(
                        "unknown_level", entry, f"category {name!r} is neither a level nor a vertebra", json_path
                    )
                )
        record.vertebrae.extend(self._levels_by_order(entry, unlabelled, record))
        return record

    def _levels_by_order(self, entry: Entry, outlines: list[dict], record: ImageRecord) -> list[Vertebra]:
        if not outlines:
            return []
        anchor = self.first_level if self.level_anchor == "top" else self.last_level
        if anchor is None:
            raise ValueError(
                f"{type(self).__name__}: a generic vertebra category needs {self.level_anchor} level "
                "(first_level / last_level)"
            )
        # Provisional level only to build the objects; real levels follow from the vertical order.
        vertebrae = sorted((Vertebra(anchor, **o) for o in outlines), key=lambda v: v.centroid()[1])
        steps = range(len(vertebrae)) if self.level_anchor == "top" else range(1 - len(vertebrae), 1)
        kept = []
        for vertebra, step in zip(vertebrae, steps):
            level = offset_level(anchor, step)
            if level is None:
                record.problems.append(
                    self._problem("unknown_level", entry, f"more vertebrae than levels from {anchor}")
                )
                continue
            vertebra.level = level
            kept.append(vertebra)
        return kept


def _outline(segmentation, height: int, width: int) -> dict:
    """Vertebra keyword arguments for one COCO segmentation (single polygon, multi-part or RLE)."""
    if isinstance(segmentation, list) and len(segmentation) == 1:
        polygon = np.asarray(segmentation[0], dtype=np.float64).reshape(-1, 2) - COCO_PIXEL_OFFSET
        return {"polygon": polygon}
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    mask, offset = crop_to_foreground(mask_utils.decode(rle))
    return {"mask": mask, "offset": offset}


def _spacing(value) -> tuple[float, float] | None:
    if value is None:
        return None
    values = np.atleast_1d(np.asarray(value, dtype=float))
    return (float(values[0]), float(values[-1]))


def _resolve_annotations(root: Path, annotations):
    if annotations != "auto":
        return annotations
    if (root / "annotations.json").is_file():
        return "annotations.json"
    per_split = {
        split: f"annotations/{split}.json"
        for split in ("train", "val", "test")
        if (root / "annotations" / f"{split}.json").is_file()
    }
    if not per_split:
        raise FileNotFoundError(
            f"no COCO annotations in {root}: expected annotations.json or annotations/<split>.json; "
            "name the file(s) with dataset.reader.annotations"
        )
    return per_split


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file {path} not found; set dataset.reader.annotations")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"COCO annotation file {path} is not valid JSON: {error}") from error
