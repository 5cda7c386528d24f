"""Clinical angles of each film as predicted and as annotated, and how far apart they are.

Per film: the angles `clinical.clinical_row` gives for its view (AP: the three AASCE Cobb angles;
lateral: lordosis) from the predicted vertebrae (`pred_*`), from the annotated ones (`annotated_*`)
and, where the dataset ships reference angles (AASCE `angles.csv`, `record.meta["cobb_angles"]`),
those (`reference_cobb_*`). The summary gives the AASCE challenge metric, SMAPE of the predicted
Cobb angles against the reference and against the annotated ones, and mean absolute errors; films
whose prediction gives no angle (fewer than two vertebrae with endplates) are counted apart.
"""

from __future__ import annotations

import numpy as np

from spinefm.data.record import ImageRecord, Vertebra
from spinefm.evaluation.clinical import COBB_KEYS, LORDOSIS, clinical_row, smape
from spinefm.evaluation.metrics import finite_mean


def clinical_comparison(
    record: ImageRecord, pred: list[Vertebra], view: str | None, image_height: float, cobb_tilt: str
) -> dict:
    """One film's row; `cobb_tilt` measures the predicted masks' tilts (annotated outlines: endplates)."""
    row = {"image_id": record.id, "view": view}
    row |= {f"pred_{k}": v for k, v in clinical_row(pred, view, image_height, cobb_tilt=cobb_tilt).items()}
    row |= {f"annotated_{k}": v for k, v in clinical_row(record.vertebrae, view, image_height).items()}
    reference = record.meta.get("cobb_angles")
    if reference is not None:
        row |= {f"reference_cobb_{k}": float(v) for k, v in zip(COBB_KEYS, reference)}
    return row


def clinical_summary(rows: list[dict], cobb_tilt: str) -> dict:
    """SMAPE (%) and mean absolute errors (degrees) of the predicted angles, and the `cobb_tilt` that
    measured them; {} without any angle."""
    summary = {}
    cobb = [r for r in rows if "pred_cobb_pt" in r]
    if cobb:
        summary["cobb_tilt"] = cobb_tilt
        pred = _angles(cobb, "pred_cobb")
        for source in ("reference", "annotated"):
            truth = _angles(cobb, f"{source}_cobb")
            if np.isfinite(truth).any():
                summary[f"cobb_smape_vs_{source}"] = smape(pred, truth)
                summary[f"cobb_mae_vs_{source}"] = {
                    k: finite_mean(np.abs(pred[:, i] - truth[:, i])) for i, k in enumerate(COBB_KEYS)
                }
        summary["cobb_films"] = len(cobb)
        summary["cobb_films_unmeasured"] = int((~np.isfinite(pred).all(axis=1)).sum())  # left out of the figures above
    for name, *_ in LORDOSIS.values():
        films = [r for r in rows if f"pred_{name}" in r]
        if films:
            error = np.array([r[f"pred_{name}"] - r[f"annotated_{name}"] for r in films], np.float64)
            summary[f"{name}_mae_vs_annotated"] = finite_mean(np.abs(error))
            summary[f"{name}_films"] = len(films)
    return summary


def _angles(rows: list[dict], prefix: str) -> np.ndarray:
    return np.array([[r.get(f"{prefix}_{k}", np.nan) for k in COBB_KEYS] for r in rows], np.float64)
