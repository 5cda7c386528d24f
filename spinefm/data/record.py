"""The common per-image record every reader produces and everything downstream consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from skimage.draw import polygon as rasterize_polygon

from spinefm.data.levels import level_index, missing_between, normalize_level
from spinefm.data.masks import crop_iou
from spinefm.data.problems import Problem

VIEWS = ("lateral_cervical", "lateral_lumbar", "ap_thoracolumbar")


@dataclass
class Vertebra:
    """One vertebral body: its level and its outline, as a polygon or as a cropped binary mask.

    Polygons are (N, 2) arrays of (x, y) pixel coordinates, pixel centres at integers.
    Masks are stored cropped to their bounding box, with `offset` = (x0, y0) of the crop,
    so a record never holds a full-image array per vertebra.
    """

    level: str
    polygon: np.ndarray | None = None
    mask: np.ndarray | None = None
    offset: tuple[int, int] = (0, 0)
    exact: bool = True  # False where the outline was approximated (e.g. CSXA's C2)

    def __post_init__(self):
        self.level = normalize_level(self.level)
        if (self.polygon is None) == (self.mask is None):
            raise ValueError("a vertebra needs exactly one outline: a polygon or a mask")
        if self.polygon is not None:
            self.polygon = np.asarray(self.polygon, dtype=np.float64).reshape(-1, 2)
        else:
            self.mask = np.asarray(self.mask).astype(bool, copy=False)
            self.offset = (int(self.offset[0]), int(self.offset[1]))

    @classmethod
    def from_full_mask(cls, level: str, full_mask: np.ndarray, **kwargs) -> Vertebra:
        """Build from a full-image mask, keeping only its bounding-box crop."""
        crop, offset = crop_to_foreground(full_mask)
        return cls(level, mask=crop, offset=offset, **kwargs)

    def mask_crop(self) -> tuple[np.ndarray, tuple[int, int]]:
        """Binary mask of the outline cropped to its pixel bounding box, and the crop's (x0, y0)."""
        if self.mask is not None:
            return self.mask, self.offset
        if self.polygon.shape[0] < 3 or not np.isfinite(self.polygon).all():
            return np.zeros((0, 0), bool), (0, 0)
        x0, y0 = np.floor(self.polygon.min(axis=0)).astype(int)
        x1, y1 = np.ceil(self.polygon.max(axis=0)).astype(int) + 1
        rr, cc = rasterize_polygon(self.polygon[:, 1] - y0, self.polygon[:, 0] - x0, shape=(y1 - y0, x1 - x0))
        crop = np.zeros((y1 - y0, x1 - x0), bool)
        crop[rr, cc] = True
        return crop, (int(x0), int(y0))

    def to_mask(self, height: int, width: int) -> np.ndarray:
        """Full-image binary mask (H, W); parts of the outline outside the image are dropped."""
        full = np.zeros((height, width), bool)
        crop, (x0, y0) = self.mask_crop()
        h, w = crop.shape
        ya, yb, xa, xb = max(y0, 0), min(y0 + h, height), max(x0, 0), min(x0 + w, width)
        if ya < yb and xa < xb:
            full[ya:yb, xa:xb] = crop[ya - y0 : yb - y0, xa - x0 : xb - x0]
        return full

    def area(self) -> float:
        """Area in pixels: shoelace area for polygons, pixel count for masks."""
        if self.polygon is not None:
            if self.polygon.shape[0] < 3 or not np.isfinite(self.polygon).all():
                return 0.0
            x, y = self.polygon[:, 0], self.polygon[:, 1]
            return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)
        return float(self.mask.sum())

    def centroid(self) -> np.ndarray:
        """(x, y) centre of area."""
        if self.polygon is not None:
            x, y = self.polygon[:, 0], self.polygon[:, 1]
            cross = x * np.roll(y, -1) - np.roll(x, -1) * y
            twice_area = cross.sum()
            if abs(twice_area) < 1e-9:
                return self.polygon.mean(axis=0)
            cx = ((x + np.roll(x, -1)) * cross).sum() / (3 * twice_area)
            cy = ((y + np.roll(y, -1)) * cross).sum() / (3 * twice_area)
            return np.array([cx, cy])
        rows, cols = np.nonzero(self.mask)
        if rows.size == 0:
            return np.array([np.nan, np.nan])
        return np.array([cols.mean() + self.offset[0], rows.mean() + self.offset[1]])

    def box(self) -> np.ndarray:
        """(x0, y0, x1, y1) bounding box in pixel coordinates (x1, y1 exclusive for masks)."""
        if self.polygon is not None:
            return np.concatenate([self.polygon.min(axis=0), self.polygon.max(axis=0)])
        rows, cols = np.nonzero(self.mask)
        if rows.size == 0:
            return np.full(4, np.nan)
        x0, y0 = self.offset
        return np.array([cols.min() + x0, rows.min() + y0, cols.max() + x0 + 1, rows.max() + y0 + 1], float)


def crop_to_foreground(full_mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """A binary mask cropped to its foreground's bounding box, and the crop's (x0, y0)."""
    full_mask = np.asarray(full_mask) > 0
    rows, cols = np.nonzero(full_mask)
    if rows.size == 0:
        return np.zeros((0, 0), bool), (0, 0)
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    return full_mask[y0:y1, x0:x1].copy(), (int(x0), int(y0))


@dataclass
class ImageRecord:
    """One radiograph and its vertebrae, ordered top to bottom.

    The image is read on demand from `image_path` (original bit depth, greyscale) unless it is
    held in `image` (generated data). `spacing_mm` is (row, column) mm per pixel where known.
    """

    id: str
    vertebrae: list[Vertebra]
    image_path: Path | None = None
    image: np.ndarray | None = None
    view: str | None = None
    spacing_mm: tuple[float, float] | None = None
    auto_invert: bool = False
    meta: dict = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self):
        if self.view is not None and self.view not in VIEWS:
            raise ValueError(f"unknown view {self.view!r}; expected one of {VIEWS}")
        if self.image_path is not None:
            self.image_path = Path(self.image_path)

    @property
    def levels(self) -> list[str]:
        return [v.level for v in self.vertebrae]

    def image_shape(self) -> tuple[int, int]:
        """(height, width), from the file header when the image is not in memory."""
        if self.image is not None:
            return self.image.shape[:2]
        from spinefm.data.image_io import read_image_size

        return read_image_size(self.image_path, self.id)

    def load_image(self) -> np.ndarray:
        """The image as a 2-D array in its original bit depth; raises DataError if unreadable."""
        if self.image is not None:
            return self.image
        from spinefm.data.image_io import read_image

        loaded = read_image(self.image_path, image_id=self.id, auto_invert=self.auto_invert)
        if self.spacing_mm is None:
            self.spacing_mm = loaded.spacing_mm
        self.meta["inverted"] = loaded.inverted
        return loaded.pixels


def tidy_vertebrae(image_id: str, vertebrae: list[Vertebra], min_area: float = 4.0, max_overlap_iou: float = 0.2):
    """Order vertebrae top to bottom and drop unusable outlines.

    Returns (kept vertebrae, problems). Empty and degenerate outlines are dropped; of a duplicated
    level the first is kept. Reported but kept: gaps between consecutive levels, a level whose
    centroid is not below the one above it, and pairs of outlines overlapping by more than
    `max_overlap_iou` (annotation slips such as a copied outline).
    """
    problems: list[Problem] = []
    kept: list[Vertebra] = []
    seen: set[str] = set()
    for vertebra in sorted(vertebrae, key=lambda v: level_index(v.level)):
        area = vertebra.area()
        if vertebra.mask is not None and area == 0:
            problems.append(Problem("empty_outline", image_id, "mask has no foreground pixel", level=vertebra.level))
            continue
        if area < min_area:
            problems.append(
                Problem(
                    "degenerate_outline", image_id, f"outline area {area:.1f} px < {min_area} px", level=vertebra.level
                )
            )
            continue
        if vertebra.level in seen:
            problems.append(
                Problem("duplicate_level", image_id, "level annotated twice; kept the first", level=vertebra.level)
            )
            continue
        seen.add(vertebra.level)
        kept.append(vertebra)
    for upper, lower in zip(kept, kept[1:]):
        gap = missing_between(upper.level, lower.level)
        if gap:
            problems.append(
                Problem(
                    "level_gap",
                    image_id,
                    f"no {', '.join(gap)} between {upper.level} and {lower.level}",
                    level=lower.level,
                )
            )
    for upper, lower in zip(kept, kept[1:]):
        if lower.centroid()[1] <= upper.centroid()[1]:
            problems.append(Problem("level_order", image_id, f"centroid not below {upper.level}'s", level=lower.level))
    problems.extend(_overlaps(image_id, kept, max_overlap_iou))
    if not kept:
        problems.append(Problem("no_vertebrae", image_id, "no usable vertebra"))
    return kept, problems


def _overlaps(image_id: str, vertebrae: list[Vertebra], max_iou: float) -> list[Problem]:
    boxes = [v.box() for v in vertebrae]
    areas = [v.area() for v in vertebrae]
    crops = {}
    problems = []
    for i in range(len(vertebrae)):
        for j in range(i + 1, len(vertebrae)):
            # IoU <= box intersection / larger area: most pairs are settled without rasterising.
            if _box_intersection(boxes[i], boxes[j]) <= max_iou * max(areas[i], areas[j]):
                continue
            for k in (i, j):
                crops.setdefault(k, vertebrae[k].mask_crop())
            iou = crop_iou(*crops[i], *crops[j])
            if iou > max_iou:
                problems.append(
                    Problem(
                        "overlapping_outlines",
                        image_id,
                        f"overlaps {vertebrae[i].level} (IoU {iou:.2f})",
                        level=vertebrae[j].level,
                    )
                )
    return problems


def _box_intersection(a: np.ndarray, b: np.ndarray) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return float(max(width, 0.0) * max(height, 0.0))
