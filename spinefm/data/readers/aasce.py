"""AASCE / SpineWeb Dataset 16: AP radiographs with four corners per vertebra (T1..L5).

Layout (file names contain spaces):
    <root>[/boostnet_labeldata]/data/<subset>/<NAME>.jpg
    <root>[/boostnet_labeldata]/labels/<subset>/<NAME>.jpg.mat      variable p2, 4 points per vertebra
    <root>[/boostnet_labeldata]/labels/<subset>/landmarks.csv       x1..xN, y1..yN divided by W, H
    <root>[/boostnet_labeldata]/labels/<subset>/filenames.csv       row order of landmarks.csv, angles.csv
    <root>[/boostnet_labeldata]/labels/<subset>/angles.csv          3 Cobb angles per image (degrees)
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from spinefm.data.levels import level_range, offset_level
from spinefm.data.problems import Problem
from spinefm.data.readers.base import Entry, Reader
from spinefm.data.record import ImageRecord, Vertebra

CORNER_ORDER = (0, 1, 3, 2)  # stored TL, TR, BL, BR; outline TL -> TR -> BR -> BL


class AasceReader(Reader):
    def __init__(
        self,
        root,
        split: str = "train",
        subsets=("training",),
        first_level: str = "T1",
        last_level: str = "L5",
        annotation_source: str = "auto",
        group_pattern: str | None = r"-(\d+) [A-Z]+ AP",
        order_by_position: bool = True,
        max_height_ratio: float = 4.0,
        **kwargs,
    ):
        if annotation_source not in ("auto", "mat", "csv"):
            raise ValueError("annotation_source must be 'auto', 'mat' or 'csv'")
        self.subsets = list(subsets)
        self.first_level = first_level
        self.levels = level_range(first_level, last_level)
        self.annotation_source = annotation_source
        self.order_by_position = order_by_position
        self.max_height_ratio = max_height_ratio
        self.group_pattern = re.compile(group_pattern) if group_pattern else None
        super().__init__(root, split, **kwargs)

    def _layout_root(self) -> Path:
        root = self.require_root()
        nested = root / "boostnet_labeldata"
        return nested if nested.is_dir() else root

    def _index(self) -> list[Entry]:
        base = self._layout_root()
        entries = []
        for subset in self.subsets:
            image_dir, label_dir = base / "data" / subset, base / "labels" / subset
            table = _read_tables(label_dir)
            names = {p.name for p in image_dir.glob("*.jpg")} | set(table)
            for name in sorted(names):
                image_id = Path(name).stem
                match = self.group_pattern.search(image_id) if self.group_pattern else None
                entries.append(
                    Entry(
                        id=image_id,
                        group=f"{subset}/{match.group(1)}" if match else None,
                        payload=(image_dir / name, label_dir / f"{name}.mat"),
                        extra=table.get(name, {}),
                    )
                )
        return entries

    def _build(self, entry: Entry) -> ImageRecord:
        image_path, mat_path = entry.payload
        if not image_path.is_file():
            raise self._fail("missing_image", entry, "image file not found", image_path)
        points = self._corner_points(entry, image_path, mat_path)
        if points.shape[0] % 4:
            raise self._fail(
                "unreadable_annotation", entry, f"{points.shape[0]} points is not 4 per vertebra", mat_path
            )
        corners = points.reshape(-1, 4, 2)
        corners, problems = self._drop_scrambled(entry, corners, mat_path)
        if self.order_by_position:  # some files list the top vertebra last
            corners = corners[np.argsort(corners[:, :, 1].mean(axis=1), kind="stable")]
        count = len(corners)
        levels = self.levels if count == len(self.levels) else [offset_level(self.first_level, k) for k in range(count)]
        vertebrae = [
            Vertebra(level, polygon=corners[k][list(CORNER_ORDER)])
            for k, level in enumerate(levels)
            if level is not None
        ]
        meta = {"source": "aasce"}
        if "angles" in entry.extra:
            meta["cobb_angles"] = entry.extra["angles"]
        return ImageRecord(
            entry.id, vertebrae, image_path=image_path, view="ap_thoracolumbar", meta=meta, problems=problems
        )

    def _drop_scrambled(self, entry: Entry, corners: np.ndarray, path: Path) -> tuple[np.ndarray, list[Problem]]:
        """Drop corner groups taller than `max_height_ratio` x the median: their corners come from
        different vertebrae, and sorted by position they would land mid-spine and shift the levels
        below them. The others keep counting from the first level."""
        if not len(corners):
            return corners, []
        heights = np.ptp(corners[:, :, 1], axis=1)
        median = np.median(heights)
        scrambled = heights > self.max_height_ratio * median
        problems = [
            self._problem(
                "scrambled_corners",
                entry,
                f"corner group {k + 1} of {len(corners)} spans {heights[k] / median:.1f}x the median"
                f" vertebra height (limit {self.max_height_ratio}); dropped",
                path,
            )
            for k in np.flatnonzero(scrambled)
        ]
        return corners[~scrambled], problems

    def _corner_points(self, entry: Entry, image_path: Path, mat_path: Path) -> np.ndarray:
        use_mat = self.annotation_source == "mat" or (self.annotation_source == "auto" and mat_path.is_file())
        if use_mat:
            if not mat_path.is_file():
                raise self._fail("missing_annotation", entry, "no .mat annotation", mat_path)
            try:
                return np.asarray(scipy.io.loadmat(mat_path)["p2"], dtype=np.float64).reshape(-1, 2)
            except Exception as error:
                raise self._fail("unreadable_annotation", entry, f"cannot read p2: {error}", mat_path) from error
        if "landmarks" not in entry.extra:
            raise self._fail("missing_annotation", entry, "neither a .mat file nor a landmarks.csv row", mat_path)
        try:
            with Image.open(image_path) as image:
                width, height = image.size
        except Exception as error:
            raise self._fail("unreadable_image", entry, f"cannot decode: {error}", image_path) from error
        normalised = np.asarray(entry.extra["landmarks"], dtype=np.float64)
        half = normalised.size // 2
        return np.stack([normalised[:half] * width, normalised[half:] * height], axis=1)


def _read_tables(label_dir: Path) -> dict[str, dict]:
    """Rows of landmarks.csv and angles.csv keyed by file name (empty where the files are absent)."""
    names_file = label_dir / "filenames.csv"
    if not names_file.is_file():
        return {}
    names = [row[0].strip() for row in csv.reader(names_file.open()) if row]
    table: dict[str, dict] = {name: {} for name in names}
    for key in ("landmarks", "angles"):
        path = label_dir / f"{key}.csv"
        if path.is_file():
            rows = [[float(v) for v in row] for row in csv.reader(path.open()) if row]
            for name, row in zip(names, rows):
                table[name][key] = row
    return table
