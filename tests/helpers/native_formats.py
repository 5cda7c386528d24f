"""Write tiny datasets in the sources' native layouts, with defects planted on request.

Plain functions for tests (import with `from native_formats import write_nhanes`): each writes a
few ~120 x 100 px synthetic radiographs (dark background, grey soft tissue, bright vertebrae drawn
as sheared quadrilaterals stacked top to bottom) with their annotations under `root`, and returns
a `WrittenDataset` saying what was drawn and what a reader should give back.

Defects are named per image id:
    missing_images      ids whose image file is not written (annotations are)
    inverted            ids whose image is saved with inverted grey levels (white background)
    omit_levels         {id: levels} not annotated at all (a gap in the column)
    empty_masks         {id: levels} written as all-zero masks            (mask layouts)
    unreadable_masks    {id: levels} written as bytes that are no array   (mask layouts)
    wrong_shape_masks   {id: levels} written with a shape unlike the image (mask layouts)
    unknown_level_files {id: names} extra mask files such as <id>_X9.npy  (mask layouts)
    no_masks            ids with no mask file at all                      (mask layouts)
    missing_points      {id: labels} point labels left out, e.g. "C4 top left" (CSXA native)
    malformed_json      ids whose JSON is cut off mid-way                 (CSXA native)
    missing_json        ids with an image but no JSON                     (CSXA native)
"""

from __future__ import annotations

import csv
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from skimage.draw import polygon as fill_polygon

SIZE = (120, 100)  # (height, width)
NHANES_IDS = ("C00001", "C00002", "L00003", "C00004", "L00005", "C00006")
CSXA_IDS = ("0000001", "0000002", "0000003", "0000004", "0000005")
CERVICAL = ("C2", "C3", "C4", "C5", "C6", "C7")
LUMBAR = ("T12", "L1", "L2", "L3", "L4", "L5", "S1")
CORNER_NAMES = ("top left", "top right", "bottom right", "bottom left")  # outline order
LABEL_STYLES = ("plain", "underscore", "dash", "upper", "spaced")


@dataclass
class WrittenDataset:
    root: Path
    ids: list[str]  # every id with an image or an annotation
    splits: dict[str, list[str]] | None  # as written to data_split/; None when there is none
    images: dict[str, np.ndarray] = field(default_factory=dict)  # pixels as drawn, before any planted inversion
    outlines: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # id -> level -> (4, 2) TL, TR, BR, BL
    expected_levels: dict[str, list[str]] = field(default_factory=dict)  # what a reader should keep, top to bottom

    def centroid(self, image_id: str, level: str) -> np.ndarray:
        """(x, y) centre of the drawn quadrilateral (a parallelogram: the mean of its corners)."""
        return self.outlines[image_id][level].mean(axis=0)


# --- drawing ----------------------------------------------------------------------------------
def film_levels(image_id: str) -> tuple[str, ...]:
    """NHANES-style: lumbar films (L...) T12..S1, everything else C2..C7."""
    return LUMBAR if image_id[:1].upper() == "L" else CERVICAL


def vertebra_quads(levels: Sequence[str], size=SIZE, margin: int = 8, shear: int = 3) -> dict[str, np.ndarray]:
    """Integer-cornered parallelograms (TL, TR, BR, BL) stacked top to bottom, gently curved."""
    height, width = size
    pitch = (height - 2 * margin) / max(len(levels), 1)
    quads = {}
    for k, level in enumerate(levels):
        top = round(margin + k * pitch)
        bottom = round(margin + k * pitch + 0.7 * pitch)
        cx = round(width / 2 + 6 * np.sin(np.pi * (k + 0.5) / len(levels)))
        half = width // 7
        quads[level] = np.array(
            [
                [cx - half + shear, top],
                [cx + half + shear, top],
                [cx + half - shear, bottom],
                [cx - half - shear, bottom],
            ],
            dtype=float,
        )
    return quads


def full_mask(quad: np.ndarray, size=SIZE) -> np.ndarray:
    mask = np.zeros(size, np.uint8)
    rows, cols = fill_polygon(quad[:, 1], quad[:, 0], shape=size)
    mask[rows, cols] = 1
    return mask


def draw_radiograph(quads: Mapping[str, np.ndarray], size=SIZE, seed: int = 0) -> np.ndarray:
    """uint8 image: dark air border, grey soft tissue in the middle, bright vertebrae."""
    height, width = size
    rng = np.random.default_rng(seed)
    image = np.full(size, 15, np.uint8)
    image[height // 10 : height - height // 10, width // 6 : width - width // 6] = 90
    for quad in quads.values():
        image[full_mask(quad, size) > 0] = 210
    noise = rng.integers(-4, 5, size)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)


def write_image(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), pixels):
        raise OSError(f"cv2 could not write {path}")


def default_splits(ids: Sequence[str]) -> dict[str, list[str]]:
    """About half train, a quarter val, the rest test, in listing order (each non-empty for >= 3 ids)."""
    ids = list(ids)
    n_train, n_val = max(1, len(ids) // 2), max(1, len(ids) // 4)
    return {"train": ids[:n_train], "val": ids[n_train : n_train + n_val], "test": ids[n_train + n_val :]}


def write_split_files(root: Path, splits: Mapping[str, Sequence[str]]) -> None:
    folder = Path(root) / "data_split"
    folder.mkdir(parents=True, exist_ok=True)
    for name, listed in splits.items():
        (folder / f"{name}.txt").write_text("".join(f"{image_id}\n" for image_id in listed))


# --- SpineFM's prepared layout: imgs/, gts/<ID>_<LEVEL>.<npy|npz>, data_split/ ------------------
def write_nhanes(
    root,
    ids: Sequence[str] = NHANES_IDS,
    splits: Mapping[str, Sequence[str]] | str | None = "default",
    levels: Mapping[str, Sequence[str]] | None = None,
    size=SIZE,
    image_suffix: str = ".jpg",
    **defects,
) -> WrittenDataset:
    """NHANES II as SpineFM prepared it (.npy masks). Levels default to `film_levels(id)`.

    `splits`: "default" (`default_splits(ids)`), None (no data_split folder), or a mapping written
    verbatim (it may list ids that have no files, or leave ids out). Defects: see the module docstring.
    """
    return _write_mask_folders(root, ids, splits, levels, size, image_suffix, ".npy", **defects)


def write_csxa_prepared(
    root,
    ids: Sequence[str] = CSXA_IDS,
    splits: Mapping[str, Sequence[str]] | str | None = "default",
    levels: Mapping[str, Sequence[str]] | None = None,
    size=SIZE,
    image_suffix: str = ".jpg",
    **defects,
) -> WrittenDataset:
    """CSXA as SpineFM prepared it (.npz masks, key arr_0), C2..C7 on every film."""
    levels = {image_id: CERVICAL for image_id in ids} | dict(levels or {})
    return _write_mask_folders(root, ids, splits, levels, size, image_suffix, ".npz", **defects)


def _write_mask_folders(
    root,
    ids,
    splits,
    levels,
    size,
    image_suffix,
    mask_suffix,
    missing_images: Collection[str] = (),
    inverted: Collection[str] = (),
    omit_levels: Mapping[str, Sequence[str]] | None = None,
    empty_masks: Mapping[str, Sequence[str]] | None = None,
    unreadable_masks: Mapping[str, Sequence[str]] | None = None,
    wrong_shape_masks: Mapping[str, Sequence[str]] | None = None,
    unknown_level_files: Mapping[str, Sequence[str]] | None = None,
    no_masks: Collection[str] = (),
) -> WrittenDataset:
    root = Path(root)
    (root / "imgs").mkdir(parents=True, exist_ok=True)
    (root / "gts").mkdir(parents=True, exist_ok=True)
    omit_levels, empty_masks = dict(omit_levels or {}), dict(empty_masks or {})
    unreadable_masks, wrong_shape_masks = dict(unreadable_masks or {}), dict(wrong_shape_masks or {})
    unknown_level_files = dict(unknown_level_files or {})
    if splits == "default":
        splits = default_splits(ids)
    written = WrittenDataset(root, list(ids), {k: list(v) for k, v in splits.items()} if splits is not None else None)
    for n, image_id in enumerate(ids):
        drawn = list((levels or {}).get(image_id, film_levels(image_id)))
        quads = vertebra_quads(drawn, size)
        image = draw_radiograph(quads, size, seed=n)
        written.images[image_id], written.outlines[image_id] = image, quads
        if image_id not in missing_images:
            write_image(root / "imgs" / f"{image_id}{image_suffix}", 255 - image if image_id in inverted else image)
        kept = []
        for level, quad in quads.items():
            if image_id in no_masks or level in omit_levels.get(image_id, ()):
                continue
            path = root / "gts" / f"{image_id}_{level}{mask_suffix}"
            if level in unreadable_masks.get(image_id, ()):
                path.write_bytes(b"this is not an array file\n")
                continue
            if level in wrong_shape_masks.get(image_id, ()):
                mask = full_mask(quad + 2, (size[0] + 7, size[1] + 5))
            elif level in empty_masks.get(image_id, ()):
                mask = np.zeros(size, np.uint8)
            else:
                mask = full_mask(quad, size)
                kept.append(level)
            _save_mask(path, mask)
        for name in unknown_level_files.get(image_id, ()):
            _save_mask(root / "gts" / f"{image_id}_{name}{mask_suffix}", full_mask(next(iter(quads.values())), size))
        written.expected_levels[image_id] = kept
    if splits is not None:
        write_split_files(root, splits)
    return written


def _save_mask(path: Path, mask: np.ndarray) -> None:
    if path.suffix == ".npz":
        np.savez_compressed(path, arr_0=mask)  # np.savez names an unnamed array arr_0 too
    else:
        np.save(path, mask)


# --- CSXA native release: datasets-PNG/, datasets-JSON/ (LabelMe points), metadata.csv ---------
def csxa_point_labels(style: str = "plain") -> list[str]:
    """The 23 labels in release order, spelt in one of LABEL_STYLES."""
    labels = ["C2 centroid", "C2 bottom left", "C2 bottom right"]
    corners = ("top left", "top right", "bottom left", "bottom right")
    labels += [f"C{k} {corner}" for k in range(3, 8) for corner in corners]
    return [spell_label(label, style) for label in labels]


def spell_label(label: str, style: str) -> str:
    if style == "plain":
        return label
    if style == "underscore":
        return label.replace(" ", "_")
    if style == "dash":
        return label.replace(" ", "-")
    if style == "upper":
        return label.upper()
    if style == "spaced":  # "  c3   Top   Left "
        return "  " + "   ".join(w.lower() if i == 0 else w.title() for i, w in enumerate(label.split())) + " "
    raise ValueError(f"unknown label style {style!r}; expected one of {LABEL_STYLES}")


def csxa_points(quads: Mapping[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """Release-style points for drawn quads: C2 centroid + bottom corners, C3..C7 four corners."""
    points = {}
    for level, quad in quads.items():
        corners = dict(zip(CORNER_NAMES, quad))
        if level == "C2":
            points["C2 centroid"] = tuple(quad.mean(axis=0))
            names = ("bottom left", "bottom right")
        else:
            names = ("top left", "top right", "bottom left", "bottom right")
        for name in names:
            points[f"{level} {name}"] = tuple(corners[name])
    return points


def write_csxa_native(
    root,
    ids: Sequence[str] = CSXA_IDS,
    size=SIZE,
    label_style: str | Mapping[str, str] = "plain",
    override_points: Mapping[str, Mapping[str, tuple[float, float]]] | None = None,
    extra_shapes: Mapping[str, Sequence[dict]] | None = None,
    json_spacing: Mapping[str, object] | None = None,
    json_spacing_key: str = "mm_per_pixel",
    metadata: Mapping[str, object] | None = None,
    metadata_columns: tuple[str, str] = ("id", "mm_per_pixel"),
    missing_points: Mapping[str, Sequence[str]] | None = None,
    malformed_json: Collection[str] = (),
    missing_json: Collection[str] = (),
    missing_images: Collection[str] = (),
    inverted: Collection[str] = (),
    image_suffix: str = ".png",
) -> WrittenDataset:
    """CSXA's native release. Points are exact (float) corners of the drawn quads.

    `label_style`: one style for all, or {id: style}. `override_points`: {id: {"C2 centroid": (x, y)}}
    replaces (or adds) points by their plain label. `extra_shapes`: {id: [shape dicts]} appended.
    `json_spacing`: {id: value} written as the top-level `json_spacing_key`. `metadata`: {id: value}
    written to metadata.csv with `metadata_columns` (the id column holds `<id>.png` when it is
    `filename` or `image`). `missing_points`: {id: plain labels} left out.
    """
    root = Path(root)
    image_dir, json_dir = root / "datasets-PNG", root / "datasets-JSON"
    image_dir.mkdir(parents=True, exist_ok=True)
    json_dir.mkdir(parents=True, exist_ok=True)
    override_points, extra_shapes = dict(override_points or {}), dict(extra_shapes or {})
    json_spacing, missing_points = dict(json_spacing or {}), dict(missing_points or {})
    written = WrittenDataset(root, list(ids), None)
    for n, image_id in enumerate(ids):
        quads = vertebra_quads(CERVICAL, size)
        image = draw_radiograph(quads, size, seed=n)
        written.images[image_id], written.outlines[image_id] = image, quads
        if image_id not in missing_images:
            write_image(image_dir / f"{image_id}{image_suffix}", 255 - image if image_id in inverted else image)
        if image_id in missing_json:
            continue
        points = csxa_points(quads) | dict(override_points.get(image_id, {}))
        skipped = set(missing_points.get(image_id, ()))
        style = label_style if isinstance(label_style, str) else label_style.get(image_id, "plain")
        shapes = [
            {
                "label": spell_label(label, style),
                "points": [[float(x), float(y)]],
                "group_id": None,
                "shape_type": "point",
                "flags": {},
            }
            for label, (x, y) in points.items()
            if label not in skipped
        ]
        shapes += list(extra_shapes.get(image_id, ()))
        document = {
            "version": "4.5.6",
            "flags": {},
            "shapes": shapes,
            "imagePath": f"../datasets-PNG/{image_id}{image_suffix}",
            "imageData": None,
            "imageHeight": size[0],
            "imageWidth": size[1],
        }
        if image_id in json_spacing:
            document[json_spacing_key] = json_spacing[image_id]
        text = json.dumps(document, indent=1)
        if image_id in malformed_json:
            text = text[: len(text) // 2]
        (json_dir / f"{image_id}.json").write_text(text)
        incomplete = {label.split(" ")[0] for label in skipped}
        written.expected_levels[image_id] = [level for level in CERVICAL if level not in incomplete]
    if metadata:
        id_column, value_column = metadata_columns
        with (root / "metadata.csv").open("w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow([id_column, "age", value_column])
            for image_id, value in metadata.items():
                name = f"{image_id}{image_suffix}" if id_column in ("filename", "image") else image_id
                out.writerow([name, 50, value])
    return written


# --- reading back -------------------------------------------------------------------------------
def read_all(reader):
    """Every record of a reader, and the DataErrors of those that failed, keyed by id."""
    from spinefm.data.problems import DataError

    records, errors = {}, {}
    for index in range(len(reader)):
        try:
            record = reader[index]
            records[record.id] = record
        except DataError as error:
            errors[reader.ids[index]] = error
    return records, errors


def kinds(record, level=None):
    return sorted(p.kind for p in record.problems if level is None or p.level == level)
