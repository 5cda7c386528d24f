"""Write records as a COCO instance-segmentation dataset that CocoReader reads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from spinefm.data.levels import LEVELS, level_index
from spinefm.data.readers.coco import COCO_PIXEL_OFFSET
from spinefm.data.record import ImageRecord, Vertebra
from spinefm.io_utils import atomic_write_json, atomic_write_png

CATEGORIES = [{"id": i + 1, "name": level, "supercategory": "vertebra"} for i, level in enumerate(LEVELS)]


class CocoWriter:
    """Collects records of one split: images go to `<root>/images/`, the JSON to `annotation_path`."""

    def __init__(self, root, annotation_path, image_dir: str = "images"):
        self.root = Path(root)
        self.annotation_path = self.root / annotation_path
        self.image_dir = image_dir
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def add(self, record: ImageRecord, pixels: np.ndarray) -> None:
        file_name = f"{record.id}.png"
        atomic_write_png(self.root / self.image_dir / file_name, _png_pixels(pixels))
        image_id = len(self.images) + 1
        height, width = pixels.shape
        image = {"id": image_id, "file_name": file_name, "height": height, "width": width}
        if record.view:
            image["view"] = record.view
        if record.spacing_mm:
            image["spacing_mm"] = list(record.spacing_mm)
        self.images.append(image)
        for vertebra in record.vertebrae:
            self.annotations.append(_annotation(len(self.annotations) + 1, image_id, vertebra, height, width))

    def write(self) -> Path:
        payload = {"images": self.images, "annotations": self.annotations, "categories": CATEGORIES}
        return atomic_write_json(self.annotation_path, payload)


def _annotation(annotation_id: int, image_id: int, vertebra: Vertebra, height: int, width: int) -> dict:
    if vertebra.polygon is not None:
        segmentation = [(vertebra.polygon + COCO_PIXEL_OFFSET).round(2).ravel().tolist()]
    else:
        rle = mask_utils.encode(np.asfortranarray(vertebra.to_mask(height, width).astype(np.uint8)))
        segmentation = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
    x0, y0, x1, y1 = vertebra.box()
    annotation = {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": level_index(vertebra.level) + 1,
        "segmentation": segmentation,
        "area": vertebra.area(),
        "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
        "iscrowd": 0,
    }
    if not vertebra.exact:
        annotation["attributes"] = {"exact": False}
    return annotation


def _png_pixels(pixels: np.ndarray) -> np.ndarray:
    """PNG keeps 8 and 16 bits as they are; other data is stretched onto 16 bits."""
    if pixels.dtype in (np.uint8, np.uint16):
        return pixels
    lo, hi = float(pixels.min()), float(pixels.max())
    return np.round((pixels - lo) / max(hi - lo, 1e-12) * 65535).astype(np.uint16)
