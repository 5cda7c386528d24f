"""Overlap between ground-truth and predicted vertebrae, computed on cropped masks, and one-to-one matching.

A full (G, P, H, W) stack of image-size masks is never built: every outline is rasterised once to its
foreground's bounding-box crop, and a pair whose crops do not intersect has overlap 0 without any
pixel being looked at (`spinefm.data.masks.crop_iou`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from spinefm.data.masks import crop_iou
from spinefm.data.record import Vertebra, crop_to_foreground

Crop = tuple[np.ndarray, tuple[int, int]]  # bool mask cropped to its foreground, (x0, y0) of the crop


def tight_crop(vertebra: Vertebra) -> Crop:
    """The vertebra's mask cropped to its foreground ((0, 0) mask when empty) and the crop's (x0, y0).

    Predicted masks come on their whole patch; cropping to the foreground keeps pair tests and
    surface distances on the smallest arrays."""
    mask, (x0, y0) = vertebra.mask_crop()
    tight, (dx, dy) = crop_to_foreground(mask)
    return tight, (x0 + dx, y0 + dy)


def overlap_matrices(gt: Sequence[Crop], pred: Sequence[Crop]) -> tuple[np.ndarray, np.ndarray]:
    """(dice, iou), each (G, P): overlap of every ground-truth crop with every predicted crop.

    An empty mask has overlap 0 with everything (also with another empty mask)."""
    iou = np.zeros((len(gt), len(pred)))
    for g, (gt_mask, gt_offset) in enumerate(gt):
        for p, (pred_mask, pred_offset) in enumerate(pred):
            iou[g, p] = crop_iou(gt_mask, gt_offset, pred_mask, pred_offset)
    dice = 2 * iou / (1 + iou)  # Dice = 2 I / (A + B) = 2 IoU / (1 + IoU)
    return dice, iou


def one_to_one(scores: np.ndarray, min_score: float) -> list[tuple[int, int]]:
    """Pairs (g, p), each row and each column used at most once, maximising the summed score of the
    pairs that count; a pair is kept only when its score is above `min_score`.

    Scores not above `min_score` are zeroed before the assignment, so the optimum is not spent on
    pairs that are dropped afterwards."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return []
    counted = np.where(scores > min_score, scores, 0.0)
    rows, cols = linear_sum_assignment(counted, maximize=True)
    return [(int(g), int(p)) for g, p in zip(rows, cols) if scores[g, p] > min_score]
