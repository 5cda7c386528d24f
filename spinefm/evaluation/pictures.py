"""A film with its predicted vertebrae (coloured masks and level names, as infer.py draws them) and
the ground-truth outlines in white, for the worst films of an evaluation."""

from __future__ import annotations

import cv2
import numpy as np

from spinefm.data.record import Vertebra
from spinefm.pipeline.io.format import paint_labels
from spinefm.pipeline.io.render import draw_levels, picture_scale

TRUTH_COLOUR = (255, 255, 255)


def comparison_picture(
    image: np.ndarray, truth: list[Vertebra], pred: list[Vertebra], max_side: int, alpha: float
) -> np.ndarray:
    labels = paint_labels(image.shape, [(v.level, *v.mask_crop()) for v in pred])
    picture = draw_levels(image, labels, [(v.level, v.centroid()) for v in pred], max_side, alpha)
    scale = picture_scale(image.shape, max_side)
    thickness = max(1, round(max(picture.shape[:2]) / 800))
    for vertebra in truth:
        mask, offset = vertebra.mask_crop()
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        scaled = [np.round((c.reshape(-1, 2) + offset) * scale).astype(np.int32) for c in contours]
        cv2.polylines(picture, scaled, True, TRUTH_COLOUR, thickness, cv2.LINE_AA)
    return picture
