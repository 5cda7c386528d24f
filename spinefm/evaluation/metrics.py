"""Per-film and whole-set metrics of predicted vertebrae against ground truth.

Two ways of counting, side by side:
- SpineFM's (as the paper counts it; docs/method.md, Evaluation): a ground-truth vertebra is identified
  when some prediction has Dice > `identify_dice` with it; one prediction may identify several
  ground-truth vertebrae (the original's rule, kept). Its Dice is its best Dice over all predictions.
  Identification rate = identified / all ground-truth vertebrae; headline Dice = mean best Dice over the
  identified vertebrae of the whole set; per-image Dice = mean over a film's ground truth with every
  miss counted as 0.
- One-to-one: `linear_sum_assignment` on Dice or IoU (`match_on`), a pair kept when above `match_min`.
  Unmatched predictions are false positives, unmatched ground truth is missed. Level-label accuracy,
  centroid error, HD95 and ASSD (`spinefm.evaluation.surface`) are over matched pairs; mm figures
  only for films with a known pixel spacing, (row, col) mm per pixel applied per axis.
- Mask mAP (torchmetrics `MeanAveragePrecision(iou_type="segm")`, COCO's definition) over the films
  added, class-agnostic ("agnostic") or with one class per level ("levels").

Empty and missing policy:
- an empty predicted mask has Dice and IoU 0 with everything, so it identifies nothing, is never
  matched and counts as a false positive (and as a false detection in mAP);
- a film with no ground-truth vertebrae has NaN identification rate and Dice figures in its own row
  (left out of every mean) but its predictions count as false positives and it counts as an image in
  false positives per image;
- a film with no predictions has every ground-truth vertebra missed: identification rate 0,
  per-image Dice 0, NaN mean Dice over identified;
- every mean and median skips NaN and missing values; with nothing to average it is NaN.

Rows use NaN for an undefined number and None for an undefined index, level or flag.
Only cropped masks are used, except for mAP, which needs one film's image-size masks at a time
(torchmetrics keeps them as run-length encodings, so memory grows with instances, not pixels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torchmetrics.detection import MeanAveragePrecision

from spinefm.data.levels import LEVELS, are_adjacent, level_index
from spinefm.data.record import Vertebra
from spinefm.evaluation.clinical import COBB_TILTS
from spinefm.evaluation.matching import one_to_one, overlap_matrices, tight_crop
from spinefm.evaluation.surface import surface_distances

NAN = float("nan")
MATCH_ON = ("dice", "iou")
MAP_CLASSES = ("agnostic", "levels")
DISTANCES = ("centroid_error_px", "centroid_error_mm", "hd95_px", "hd95_mm", "assd_px", "assd_mm")
VERTEBRA_COLUMNS = (
    "image_id",
    "kind",
    "level",
    "identified",
    "best_dice",
    "best_pred",
    "pred_index",
    "pred_level",
    "score",
    "match_dice",
    "match_iou",
    "label_exact",
    "label_within_one",
    *DISTANCES,
)
IMAGE_COLUMNS = (
    "image_id",
    "n_gt",
    "n_pred",
    "identified",
    "identification_rate",
    "mean_dice_identified",
    "image_dice",
    "matched",
    "matched_rate",
    "mean_match_dice",
    "mean_match_iou",
    "false_positives",
    "missed",
    "label_accuracy",
    "label_within_one",
    *DISTANCES,
)


@dataclass
class EvaluationSettings:
    """identify_dice: SpineFM's identification threshold (Dice above it); match_on / match_min: the
    one-to-one score ("dice" or "iou") and the score a pair must be above; surface: compute HD95 and
    ASSD; map_classes: "agnostic" (one vertebra class), "levels" (one class per level) or None (no mAP);
    cobb_tilt: how a predicted mask's tilt is measured for Cobb angles (`clinical.COBB_TILTS`)."""

    identify_dice: float = 0.4
    match_on: str = "dice"
    match_min: float = 0.4
    surface: bool = True
    map_classes: str | None = "agnostic"
    cobb_tilt: str = "centreline"

    def __post_init__(self):
        if self.match_on not in MATCH_ON:
            raise ValueError(f"match_on must be one of {MATCH_ON}, got {self.match_on!r}")
        if self.map_classes is not None and self.map_classes not in MAP_CLASSES:
            raise ValueError(f"map_classes must be one of {MAP_CLASSES} or None, got {self.map_classes!r}")
        if self.cobb_tilt not in COBB_TILTS:
            raise ValueError(f"cobb_tilt must be one of {COBB_TILTS}, got {self.cobb_tilt!r}")


@dataclass
class FilmEvaluation:
    """One row per ground-truth vertebra (kind "gt", top to bottom) then one per unmatched prediction
    (kind "false_positive"), and the film's row.

    Vertebra row: SpineFM's counting in identified, best_dice, best_pred (index of the prediction with
    that Dice); the one-to-one pair in pred_index, pred_level, score, match_dice, match_iou, label_*,
    centroid_error_*, hd95_*, assd_* (a false positive fills pred_index, pred_level and score only)."""

    image_id: str
    vertebra_rows: list[dict]
    image_row: dict


def evaluate_film(
    image_id: str,
    gt: Sequence[Vertebra],
    pred: Sequence[Vertebra],
    scores: Sequence[float] | None,
    spacing_mm: tuple[float, float] | None,
    settings: EvaluationSettings,
) -> FilmEvaluation:
    """Both ways of counting for one film; `scores` (one per prediction) only travel into the rows."""
    scores = _scores(pred, scores)
    gt_crops, pred_crops = [tight_crop(v) for v in gt], [tight_crop(v) for v in pred]
    dice, iou = overlap_matrices(gt_crops, pred_crops)
    pairs = dict(one_to_one(dice if settings.match_on == "dice" else iou, settings.match_min))
    rows = []
    for g, truth in enumerate(gt):
        best_dice = float(dice[g].max(initial=0.0))
        row = _empty_row(image_id, "gt", truth.level)
        row.update(best_dice=best_dice, best_pred=int(dice[g].argmax()) if best_dice > 0 else None)
        row["identified"] = best_dice > settings.identify_dice
        if g in pairs:
            p = pairs[g]
            row.update(_pair(truth, pred[p], gt_crops[g], pred_crops[p], spacing_mm, settings.surface))
            row.update(pred_index=p, score=scores[p], match_dice=float(dice[g, p]), match_iou=float(iou[g, p]))
        rows.append(row)
    for p in sorted(set(range(len(pred))) - set(pairs.values())):
        row = _empty_row(image_id, "false_positive", None)
        rows.append({**row, "pred_index": p, "pred_level": pred[p].level, "score": scores[p]})
    return FilmEvaluation(image_id, rows, _image_row(image_id, rows, len(gt), len(pred)))


class MetricAccumulator:
    """Takes films one at a time, keeps only their rows (and mAP's run-length encodings), and sums up."""

    def __init__(self, settings: EvaluationSettings | None = None):
        self.settings = settings or EvaluationSettings()
        self.vertebra_rows: list[dict] = []
        self.image_rows: list[dict] = []
        self._map = MeanAveragePrecision(iou_type="segm") if self.settings.map_classes else None

    def add(
        self,
        image_id: str,
        gt: Sequence[Vertebra],
        pred: Sequence[Vertebra],
        scores: Sequence[float] | None,
        shape: tuple[int, int],
        spacing_mm: tuple[float, float] | None = None,
    ) -> FilmEvaluation:
        """Evaluate one film of (height, width) `shape` and add it to the totals."""
        film = evaluate_film(image_id, gt, pred, scores, spacing_mm, self.settings)
        self.vertebra_rows.extend(film.vertebra_rows)
        self.image_rows.append(film.image_row)
        if self._map is not None:
            score = torch.tensor(_scores(pred, scores), dtype=torch.float32)
            prediction = {"masks": _full_masks(pred, shape), "scores": score, "labels": self._map_labels(pred)}
            self._map.update([prediction], [{"masks": _full_masks(gt, shape), "labels": self._map_labels(gt)}])
        return film

    def summary(self) -> dict:
        """The whole set's figures (see `summarize`), with mask mAP where enabled."""
        result = summarize(self.vertebra_rows, self.image_rows, self.settings)
        result["map"] = self._map_summary() if self._map is not None else None
        return result

    def _map_labels(self, vertebrae: Sequence[Vertebra]) -> torch.Tensor:
        if self.settings.map_classes == "levels":
            return torch.tensor([level_index(v.level) for v in vertebrae], dtype=torch.long)
        return torch.zeros(len(vertebrae), dtype=torch.long)

    def _map_summary(self) -> dict:
        if not self.image_rows:
            return {"map": NAN, "map_50": NAN, "map_75": NAN}
        values = self._map.compute()
        # torchmetrics reports -1 where there is nothing to average (no ground truth at all)
        return {key: NAN if float(values[key]) < 0 else float(values[key]) for key in ("map", "map_50", "map_75")}


def summarize(vertebra_rows: Sequence[dict], image_rows: Sequence[dict], settings: EvaluationSettings) -> dict:
    """Headline figures over all films from their rows: SpineFM's counting, per level, and one-to-one."""
    truths = [r for r in vertebra_rows if r["kind"] == "gt"]
    identified = [r for r in truths if r["identified"]]
    matched = [r for r in truths if r["pred_index"] is not None]
    false_positives = sum(r["false_positives"] for r in image_rows)
    one = {
        "matched": len(matched),
        "matched_rate": _rate(len(matched), len(truths)),
        "mean_dice": finite_mean(r["match_dice"] for r in matched),
        "mean_iou": finite_mean(r["match_iou"] for r in matched),
        "false_positives": false_positives,
        "false_positives_per_image": _rate(false_positives, len(image_rows)),
        "missed": len(truths) - len(matched),
        "label_accuracy": finite_mean(r["label_exact"] for r in matched),
        "label_within_one": finite_mean(r["label_within_one"] for r in matched),
        **{name: _mean_median([r[name] for r in matched]) for name in DISTANCES},
    }
    return {
        "settings": asdict(settings),
        "n_images": len(image_rows),
        "n_images_with_gt": sum(r["n_gt"] > 0 for r in image_rows),
        "n_gt": len(truths),
        "n_pred": sum(r["n_pred"] for r in image_rows),
        "identified": len(identified),
        "identification_rate": _rate(len(identified), len(truths)),
        "mean_dice_identified": finite_mean(r["best_dice"] for r in identified),
        "mean_image_dice": finite_mean(r["image_dice"] for r in image_rows),
        "per_level": per_level(truths),
        "one_to_one": one,
    }


def per_level(truth_rows: Sequence[dict]) -> dict[str, dict]:
    """{level: {n, identified, identification_rate, mean_dice (over identified), matched_rate,
    label_accuracy}}, top to bottom, for the levels present in the ground-truth rows."""
    result = {}
    for level in LEVELS:
        rows = [r for r in truth_rows if r["level"] == level]
        if not rows:
            continue
        identified = [r for r in rows if r["identified"]]
        matched = [r for r in rows if r["pred_index"] is not None]
        result[level] = {
            "n": len(rows),
            "identified": len(identified),
            "identification_rate": _rate(len(identified), len(rows)),
            "mean_dice": finite_mean(r["best_dice"] for r in identified),
            "matched_rate": _rate(len(matched), len(rows)),
            "label_accuracy": finite_mean(r["label_exact"] for r in matched),
        }
    return result


def _pair(truth: Vertebra, guess: Vertebra, gt_crop, pred_crop, spacing_mm, surface: bool) -> dict:
    """Label agreement, centroid error and (if `surface`) boundary distances of a matched pair."""
    dx, dy = np.abs(guess.centroid() - truth.centroid())
    values = {
        "pred_level": guess.level,
        "label_exact": guess.level == truth.level,
        "label_within_one": guess.level == truth.level or are_adjacent(guess.level, truth.level),
        "centroid_error_px": float(np.hypot(dx, dy)),
    }
    if spacing_mm is not None:
        row_mm, col_mm = spacing_mm
        values["centroid_error_mm"] = float(np.hypot(dx * col_mm, dy * row_mm))
    if surface:
        values["hd95_px"], values["assd_px"] = surface_distances(*gt_crop, *pred_crop)
        if spacing_mm is not None:
            values["hd95_mm"], values["assd_mm"] = surface_distances(*gt_crop, *pred_crop, spacing=tuple(spacing_mm))
    return values


def _image_row(image_id: str, rows: list[dict], n_gt: int, n_pred: int) -> dict:
    truths = [r for r in rows if r["kind"] == "gt"]
    identified = [r for r in truths if r["identified"]]
    matched = [r for r in truths if r["pred_index"] is not None]
    return {
        "image_id": image_id,
        "n_gt": n_gt,
        "n_pred": n_pred,
        "identified": len(identified),
        "identification_rate": _rate(len(identified), n_gt),
        "mean_dice_identified": finite_mean(r["best_dice"] for r in identified),
        "image_dice": finite_mean(r["best_dice"] if r["identified"] else 0.0 for r in truths),
        "matched": len(matched),
        "matched_rate": _rate(len(matched), n_gt),
        "mean_match_dice": finite_mean(r["match_dice"] for r in matched),
        "mean_match_iou": finite_mean(r["match_iou"] for r in matched),
        "false_positives": n_pred - len(matched),
        "missed": n_gt - len(matched),
        "label_accuracy": finite_mean(r["label_exact"] for r in matched),
        "label_within_one": finite_mean(r["label_within_one"] for r in matched),
        **{name: finite_mean(r[name] for r in matched) for name in DISTANCES},
    }


def _empty_row(image_id: str, kind: str, level: str | None) -> dict:
    row = dict.fromkeys(VERTEBRA_COLUMNS)
    row.update({name: NAN for name in ("best_dice", "score", "match_dice", "match_iou", *DISTANCES)})
    row.update(image_id=image_id, kind=kind, level=level)
    return row


def _scores(pred: Sequence[Vertebra], scores: Sequence[float] | None) -> list[float]:
    if scores is None:
        return [1.0] * len(pred)
    if len(scores) != len(pred):
        raise ValueError(f"{len(scores)} scores for {len(pred)} predicted vertebrae")
    return [float(s) for s in scores]


def _full_masks(vertebrae: Sequence[Vertebra], shape: tuple[int, int]) -> torch.Tensor:
    height, width = shape
    masks = np.zeros((len(vertebrae), height, width), bool)
    for i, vertebra in enumerate(vertebrae):
        masks[i] = vertebra.to_mask(height, width)
    return torch.from_numpy(masks)


def _finite(values) -> np.ndarray:
    array = np.array([v for v in values if v is not None], dtype=np.float64)
    return array[np.isfinite(array)]


def finite_mean(values) -> float:
    """Mean of the finite values (None, NaN and infinities left out); NaN when none is left."""
    array = _finite(values)
    return float(array.mean()) if array.size else NAN


def _mean_median(values) -> dict[str, float]:
    array = _finite(values)
    if not array.size:
        return {"mean": NAN, "median": NAN}
    return {"mean": float(array.mean()), "median": float(np.median(array))}


def _rate(count: int, total: int) -> float:
    return count / total if total else NAN
