"""What `infer.py` writes per film `<id>`, each file atomically (`spinefm.io_utils`):

- `<id>.labels.png`: uint8 label map at the film's size; pixel value = index of the level in
  `spinefm.data.levels.LEVELS` + 1 (C1 = 1 ... S1 = 26), 0 = background. Where two masks overlap,
  the lower instance (later in the list) wins.
- `<id>.overlay.png`: the film in grey (scaled to `max_side` px on its long side when larger),
  each vertebra a translucent colour with its outline and level name.
- `<id>.json` (written last, so its presence means the film is done): COCO-like instances
  `{image: {id, file, height, width, view, inverted, spacing_mm}, instances: [{level, category_id
  (label map value), score, source, spine_class, area, centroid [x, y], bbox_xyxy, segmentation
  [[x0, y0, x1, y1, ...], ...], mask: {offset [x0, y0], size [h, w], counts}}], trace, chain}`. `mask` is
  the exact binary mask: COCO compressed RLE (pycocotools) of its crop, whose top-left pixel is
  `offset`; `read_prediction` reads it back. NaN or infinite numbers are written as null.
  Coordinates are pixels with pixel centres at integers (the project's convention; COCO files add 0.5);
  a box's x1, y1 are exclusive. `segmentation`
  holds one polygon per connected part of the mask (outer boundary pixels, `cv2.findContours`;
  parts under 3 boundary points are left out). `trace` is the loop's `Trace`: detections, seeds and
  their refined centroids, every step (window, predicted and refined point, IoU, class, outcome),
  and `stops`, each direction's stop reason (`spinefm.pipeline.core.types.STOP_REASONS`), `masks`,
  how many positions took Med-SA's mask and how many a detection's own, and the decoder's input and
  output. `chain`: every position the walk segmented, top to bottom, with its
  decoded level, whether it was kept, score, centroid and exact mask (null where the mask came out
  empty): `spinefm.pipeline.tools.redecode` decodes it again with other settings without running a model.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as coco_mask

from spinefm.data.levels import LEVELS, level_index
from spinefm.data.record import Vertebra
from spinefm.io_utils import atomic_write_json
from spinefm.pipeline.core.patching import clip_box
from spinefm.pipeline.core.types import Instance, LoopResult, MaskCrop

SUFFIXES = {"labels": ".labels.png", "overlay": ".overlay.png", "instances": ".json"}


def output_paths(output_dir, image_id: str) -> dict[str, Path]:
    return {kind: Path(output_dir) / f"{image_id}{suffix}" for kind, suffix in SUFFIXES.items()}


def is_done(output_dir, image_id: str) -> bool:
    return output_paths(output_dir, image_id)["instances"].is_file()


def instance_files(output_dir) -> list[Path]:
    """Every film's instances JSON under an output folder (ids with folders included), sorted."""
    return sorted(p for p in Path(output_dir).rglob(f"*{SUFFIXES['instances']}") if p.name != "summary.json")


def rewrite_instance_files(output_dir, out, change: Callable[[dict], dict]) -> int:
    """Write `change` of every instances JSON under `output_dir` (as read) to the same relative path
    under `out`; the number of films."""
    files = instance_files(output_dir)
    for path in files:
        atomic_write_json(Path(out) / path.relative_to(output_dir), change(json.loads(path.read_text())))
    return len(files)


def label_value(level: str) -> int:
    return level_index(level) + 1


def label_map(result: LoopResult) -> np.ndarray:
    return paint_labels(result.image_shape, [(i.level, i.mask, i.offset) for i in result.instances])


def paint_labels(shape: tuple[int, int], masks) -> np.ndarray:
    """A uint8 label map of (level, bool crop, (x0, y0)) masks; a later mask wins where they overlap."""
    height, width = shape
    labels = np.zeros((height, width), np.uint8)
    for level, mask, (x0, y0) in masks:
        box = clip_box((x0, y0), mask.shape, height, width)
        if box is None:
            continue
        xa, ya, xb, yb = box
        labels[ya:yb, xa:xb][mask[ya - y0 : yb - y0, xa - x0 : xb - x0]] = label_value(level)
    return labels


def polygons(instance: Instance) -> list[list[float]]:
    contours, _ = cv2.findContours(instance.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    offset = np.asarray(instance.offset, np.float64)
    return [(c.reshape(-1, 2) + offset).ravel().tolist() for c in contours if len(c) >= 3]


def instance_entry(instance: Instance) -> dict:
    vertebra = instance.to_vertebra()
    return {
        "level": instance.level,
        "category_id": label_value(instance.level),
        "score": instance.score,
        "source": instance.source,
        "spine_class": instance.spine_class,
        "area": vertebra.area(),
        "centroid": instance.centroid,
        "bbox_xyxy": vertebra.box(),
        "segmentation": polygons(instance),
        "mask": encode_mask(instance.mask, instance.offset),
    }


def encode_mask(mask: np.ndarray, offset: tuple[int, int]) -> dict:
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {
        "offset": [int(offset[0]), int(offset[1])],
        "size": [int(n) for n in rle["size"]],
        "counts": rle["counts"].decode("ascii"),
    }


def decode_mask(entry: dict) -> tuple[np.ndarray, tuple[int, int]]:
    mask = coco_mask.decode({"size": entry["size"], "counts": entry["counts"].encode("ascii")}).astype(bool)
    return mask, (int(entry["offset"][0]), int(entry["offset"][1]))


def read_prediction(path) -> tuple[dict, list[Vertebra], list[float], dict]:
    """An instances JSON as (its image entry, the vertebrae top to bottom with exact masks, their
    scores, the loop's trace)."""
    payload = json.loads(Path(path).read_text())
    vertebrae, scores = [], []
    for instance in payload["instances"]:
        mask, offset = decode_mask(instance["mask"])
        vertebrae.append(Vertebra(instance["level"], mask=mask, offset=offset, exact=False))
        scores.append(float(instance["score"]))
    return payload["image"], vertebrae, scores, payload.get("trace") or {}


def chain_entry(instance: Instance | None, kept: bool) -> dict | None:
    """A chain position as written: decoded level, kept, score, source, class, centroid and exact mask (None: empty)."""
    if instance is None:
        return None
    return {
        "level": instance.level,
        "kept": kept,
        "score": instance.score,
        "source": instance.source,
        "spine_class": instance.spine_class,
        "centroid": instance.centroid,
        "mask": encode_mask(instance.mask, instance.offset),
    }


def read_chain(payload: dict) -> list[Instance | None]:
    """The chain positions of an instances JSON as instances (probabilities: the binary mask)."""
    chain = []
    for entry in payload.get("chain") or []:
        if entry is None:
            chain.append(None)
            continue
        mask, offset = decode_mask(entry["mask"])
        probability = MaskCrop(mask.astype(np.float32), offset)
        centroid = np.asarray(entry["centroid"], float)
        chain.append(
            Instance(probability, mask, centroid, entry["score"], entry["source"], entry["spine_class"], entry["level"])
        )
    return chain


def instances_json(result: LoopResult, image_info: dict) -> dict:
    height, width = result.image_shape
    return {
        "image": {"id": result.image_id, "height": height, "width": width, "view": result.view, **image_info},
        "instances": [instance_entry(i) for i in result.instances],
        "trace": dataclasses.asdict(result.trace),
        "chain": [chain_entry(i, kept) for i, kept in zip(result.chain, result.trace.chain_kept)],
        "categories": [{"id": label_value(level), "name": level} for level in LEVELS],
    }
