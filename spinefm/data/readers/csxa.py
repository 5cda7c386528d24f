"""CSXA (Cervical Spine X-ray Atlas): lateral cervical films, C2..C7, in two layouts.

Native release (corner points; no split files, so the base class splits by seeded fractions):
    <root>/datasets-PNG/<ID>.png
    <root>/datasets-JSON/<ID>.json      LabelMe-style: shapes = [{"label": "C3 top left",
                                        "points": [[x, y]], "shape_type": "point"}, ...]
    <root>/metadata.csv                 optional: id (or image / filename) and mm per pixel
  23 points per image: C2 centroid, C2 bottom left, C2 bottom right, then C3..C7 top left,
  top right, bottom left, bottom right. Outline: top-left -> top-right -> bottom-right ->
  bottom-left. C2 has no top corners: `c2_outline="approximate"` reflects its bottom corners
  through its centroid (Vertebra.exact = False), `"skip"` leaves C2 out.
  Pixel spacing: a top-level JSON key mm_per_pixel / pixel_spacing / PixelSpacing / spacing
  (scalar or [row, col]), else the same column in metadata.csv.

SpineFM's prepared layout (full-image masks, see mask_folders.py):
    <root>/imgs/<ID>.jpg
    <root>/gts/<ID>_<LEVEL>.npz             key arr_0
    <root>/data_split/{train,val,test}.txt  7-digit IDs

`layout="auto"` picks prepared where <root>/gts or <root>/imgs exists (it carries SpineFM's
splits), else native. Some films have inverted grey levels (white background): with
`fix_inverted`, `record.load_image()` detects and inverts them back.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np

from spinefm.data.image_io import IMAGE_SUFFIXES, find_image
from spinefm.data.levels import is_level, level_index, normalize_level
from spinefm.data.readers.base import Entry
from spinefm.data.readers.mask_folders import MaskFolderReader
from spinefm.data.record import ImageRecord, Vertebra

LAYOUTS = ("auto", "prepared", "native")
C2_OUTLINES = ("approximate", "skip")
SPACING_KEYS = ("mm_per_pixel", "pixel_spacing", "PixelSpacing", "spacing")
ID_COLUMNS = ("id", "image", "filename")
CORNERS = ("top left", "top right", "bottom right", "bottom left")  # outline order
NATIVE_IMAGES, NATIVE_JSON = "datasets-PNG", "datasets-JSON"

_LABEL = re.compile(r"^\s*([a-z]\d+)[\s_\-.]*(.*?)\s*$", re.IGNORECASE)
_ROLE_WORDS = {
    "upper": "top",
    "superior": "top",
    "lower": "bottom",
    "inferior": "bottom",
    "centre": "centroid",
    "center": "centroid",
}


class CsxaReader(MaskFolderReader):
    source = "csxa"
    mask_suffix = ".npz"
    id_length = 7

    def __init__(
        self,
        root,
        split: str = "train",
        layout: str = "auto",
        c2_outline: str = "approximate",
        fix_inverted: bool = True,
        **kwargs,
    ):
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
        if c2_outline not in C2_OUTLINES:
            raise ValueError(f"c2_outline must be one of {C2_OUTLINES}, not {c2_outline!r}")
        self.layout = layout  # resolved to prepared / native when the root is indexed
        self.c2_outline = c2_outline
        self.fix_inverted = fix_inverted
        super().__init__(root, split, **kwargs)

    # --- prepared layout hooks ---------------------------------------------------------------
    def _load_mask(self, path: Path) -> np.ndarray:
        with np.load(path, allow_pickle=False) as archive:
            return archive["arr_0"]

    def _view(self, image_id: str) -> str:
        return "lateral_cervical"

    def _record_options(self) -> dict:
        return {"auto_invert": self.fix_inverted}

    # --- both layouts -------------------------------------------------------------------------
    def _index(self) -> list[Entry]:
        root = self.require_root()
        if self.layout == "auto":
            self.layout = detect_layout(root)
        return self._index_mask_folders() if self.layout == "prepared" else self._index_native(root)

    def _build(self, entry: Entry) -> ImageRecord:
        return self._build_from_masks(entry) if self.layout == "prepared" else self._build_native(entry)

    # --- native layout -----------------------------------------------------------------------
    def _index_native(self, root: Path) -> list[Entry]:
        image_dir, json_dir = root / NATIVE_IMAGES, root / NATIVE_JSON
        if not image_dir.is_dir() and not json_dir.is_dir():
            raise FileNotFoundError(f"CsxaReader: no {NATIVE_IMAGES}/ or {NATIVE_JSON}/ folder in {root}")
        image_ids = {p.stem for p in image_dir.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES}
        json_ids = {p.stem for p in json_dir.glob("*.json")}
        spacing = read_metadata_spacing(root / "metadata.csv")
        return [
            Entry(id=image_id, payload=json_dir / f"{image_id}.json", extra={"spacing_mm": _lookup(spacing, image_id)})
            for image_id in sorted(image_ids | json_ids)
        ]

    def _build_native(self, entry: Entry) -> ImageRecord:
        image_dir, json_path = self.root / NATIVE_IMAGES, entry.payload
        image_path = find_image(image_dir, entry.id)
        if image_path is None:
            raise self._fail("missing_image", entry, "no image file for this id", image_dir / f"{entry.id}.png")
        if not json_path.is_file():
            raise self._fail("missing_annotation", entry, "no LabelMe JSON for this image", json_path)
        try:
            document = json.loads(json_path.read_text(encoding="utf-8-sig"))
            shapes = document["shapes"]
            if not isinstance(shapes, list):
                raise TypeError(f"'shapes' is a {type(shapes).__name__}, not a list")
        except Exception as error:  # bad JSON, no shapes: the whole annotation is unusable
            raise self._fail("unreadable_annotation", entry, f"cannot read LabelMe JSON: {error}", json_path) from error

        problems, points = [], {}
        for shape in shapes:
            label = shape.get("label") if isinstance(shape, dict) else None
            parsed = parse_point_label(label) if isinstance(label, str) else None
            if parsed is None:
                message = f"unrecognised shape label {label!r}"
                problems.append(self._problem("unreadable_annotation", entry, message, json_path))
                continue
            level, role = parsed
            if not is_level(level):
                problems.append(self._problem("unknown_level", entry, f"unknown level in label {label!r}", json_path))
                continue
            level = normalize_level(level)
            point = _first_point(shape.get("points"))
            if point is None:
                message = f"point {label!r} has no valid [x, y]"
                problems.append(self._problem("unreadable_annotation", entry, message, json_path, level))
                continue
            corners = points.setdefault(level, {})
            if role in corners:
                message = f"point {label!r} annotated twice; kept the first"
                problems.append(self._problem("duplicate_level", entry, message, json_path, level))
                continue
            corners[role] = point

        vertebrae = []
        for level in sorted(points, key=level_index):
            vertebra, problem = self._outline(entry, level, points[level], json_path)
            if vertebra is not None:
                vertebrae.append(vertebra)
            if problem is not None:
                problems.append(problem)

        meta = {"source": self.source, "layout": "native"}
        if isinstance(document.get("imageHeight"), int) and isinstance(document.get("imageWidth"), int):
            meta["image_size"] = (document["imageHeight"], document["imageWidth"])
        spacing = _spacing_from_json(document) or entry.extra.get("spacing_mm")
        return ImageRecord(
            entry.id,
            vertebrae,
            image_path=image_path,
            view="lateral_cervical",
            spacing_mm=spacing,
            auto_invert=self.fix_inverted,
            meta=meta,
            problems=problems,
        )

    def _outline(self, entry: Entry, level: str, corners: dict, json_path: Path):
        """(Vertebra or None, Problem or None) for one level's points."""
        if level == "C2" and self.c2_outline == "skip":
            return None, None
        if all(role in corners for role in CORNERS):
            return Vertebra(level, polygon=np.array([corners[r] for r in CORNERS])), None
        if level == "C2":
            needed = ("centroid", "bottom left", "bottom right")
            if all(role in corners for role in needed):
                centroid, bottom_left, bottom_right = (np.asarray(corners[r]) for r in needed)
                top_left, top_right = 2 * centroid - bottom_right, 2 * centroid - bottom_left
                polygon = np.array([top_left, top_right, bottom_right, bottom_left])
                return Vertebra(level, polygon=polygon, exact=False), None
            missing = [r for r in needed if r not in corners]
        else:
            missing = [r for r in CORNERS if r not in corners]
        message = f"no {', '.join(missing)} point; outline skipped"
        return None, self._problem("degenerate_outline", entry, message, json_path, level)


def detect_layout(root: Path) -> str:
    """'prepared' where root holds gts/ or imgs/, 'native' where it holds datasets-PNG/ or datasets-JSON/."""
    if (root / "gts").is_dir() or (root / "imgs").is_dir():
        return "prepared"
    if (root / NATIVE_IMAGES).is_dir() or (root / NATIVE_JSON).is_dir():
        return "native"
    raise FileNotFoundError(
        f"CsxaReader: {root} holds neither imgs/ + gts/ (SpineFM's prepared layout) nor "
        f"{NATIVE_IMAGES}/ + {NATIVE_JSON}/ (the native release)"
    )


def parse_point_label(label: str) -> tuple[str, str] | None:
    """('C3', 'top left') from 'C3 top left', 'c3_Top_Left', 'C3-top-left', 'C2 centroid'; None if not a point label."""
    match = _LABEL.match(label)
    if not match:
        return None
    words = [_ROLE_WORDS.get(w, w) for w in re.split(r"[\s_\-.]+", match.group(2).lower()) if w]
    if words == ["centroid"]:
        return match.group(1).upper(), "centroid"
    if len(words) == 2 and words[0] in ("top", "bottom") and words[1] in ("left", "right"):
        return match.group(1).upper(), f"{words[0]} {words[1]}"
    if len(words) == 2 and words[1] in ("top", "bottom") and words[0] in ("left", "right"):
        return match.group(1).upper(), f"{words[1]} {words[0]}"
    return None


def parse_spacing(value) -> tuple[float, float] | None:
    """(row, col) mm per pixel from a scalar, a [row, col] list or a '0.1\\0.1' / '[0.1, 0.1]' string."""
    if isinstance(value, str):
        numbers = re.findall(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", value)
        value = [float(n) for n in numbers]
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        value = [value]
    if not isinstance(value, (list, tuple)) or len(value) not in (1, 2):
        return None
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(n) and n > 0 for n in numbers):
        return None
    return (numbers[0], numbers[-1])


def read_metadata_spacing(path: Path) -> dict[str, tuple[float, float]]:
    """id -> (row, col) mm per pixel from metadata.csv; empty where the file or its columns are absent."""
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return {}
    columns = {name.strip(): name for name in rows[0] if name}
    id_column = next((columns[c] for c in ID_COLUMNS if c in columns), None)
    spacing_column = next((columns[c] for c in SPACING_KEYS if c in columns), None)
    if id_column is None or spacing_column is None:
        return {}
    spacing = {}
    for row in rows:
        name, value = (row.get(id_column) or "").strip(), parse_spacing(row.get(spacing_column) or "")
        if name and value:
            spacing[Path(name).stem if Path(name).suffix.lower() in IMAGE_SUFFIXES else name] = value
    return spacing


def _lookup(spacing: dict, image_id: str):
    """The id's spacing; a numeric id also matches without its leading zeros (spreadsheet-edited csv)."""
    if image_id in spacing:
        return spacing[image_id]
    return spacing.get(str(int(image_id))) if image_id.isdigit() else None


def _spacing_from_json(document: dict) -> tuple[float, float] | None:
    for key in SPACING_KEYS:
        if key in document:
            spacing = parse_spacing(document[key])
            if spacing:
                return spacing
    return None


def _first_point(points) -> tuple[float, float] | None:
    try:
        x, y = (float(v) for v in np.asarray(points, dtype=float).reshape(-1, 2)[0])
    except (TypeError, ValueError, IndexError):
        return None
    return (x, y) if math.isfinite(x) and math.isfinite(y) else None
