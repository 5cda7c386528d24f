"""The detector role: Mask R-CNN's masks on the film's own pixel grid."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from spinefm.data.patches import scale_image
from spinefm.models.maskrcnn import grey_to_input
from spinefm.pipeline.components.adapters.base import Adapter, full_precision
from spinefm.pipeline.components.roles import register_adapter
from spinefm.pipeline.core.patching import resample
from spinefm.pipeline.core.types import Detection, MaskCrop


@register_adapter("maskrcnn")
class MaskRCNNAdapter(Adapter):
    """Mask R-CNN on the film scaled to `image_size` on its long side (as in training); each mask is
    resampled onto the original pixel grid over the part where the model drew it, and binarised at
    `mask_threshold` for its centroid and area. Only detections scoring above `score_threshold` are
    kept (set on the model's box head, so no other mask is ever pasted)."""

    role = "detector"
    settings = ("image_size", "score_threshold", "mask_threshold")

    def __init__(self, model, image_size: int, score_threshold: float = 0.6, mask_threshold: float = 0.9):
        super().__init__(model)
        self.model.roi_heads.score_thresh = score_threshold
        self.image_size = image_size
        self.score_threshold = score_threshold
        self.mask_threshold = mask_threshold

    @torch.inference_mode()
    @full_precision
    def detect(self, films: Sequence[np.ndarray]) -> list[list[Detection]]:
        scaled = [scale_image(film, self.image_size) for film in films]  # as the training stage scales
        outputs = self.model([grey_to_input(film).to(self.device) for film in scaled])
        return [self._detections(output, film.shape) for output, film in zip(outputs, films)]

    def _detections(self, output: dict, shape: tuple[int, int]) -> list[Detection]:
        detections = []
        for mask, score in zip(output["masks"][:, 0].float().cpu().numpy(), output["scores"].cpu().tolist()):
            crop = to_original_grid(mask, shape)
            if crop is None:
                continue
            rows, cols = np.nonzero(crop.values > self.mask_threshold)
            if rows.size:
                centroid = np.array([cols.mean() + crop.offset[0], rows.mean() + crop.offset[1]])
                detections.append(Detection(crop, float(score), centroid, float(rows.size)))
        return detections


def to_original_grid(mask: np.ndarray, shape: tuple[int, int]) -> MaskCrop | None:
    """A full mask on a scaled grid as a crop of the (height, width) original grid: the original
    pixels whose bilinear sample touches a non-zero scaled pixel (None if the mask is all zero)."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return None
    scale = (mask.shape[1] / shape[1], mask.shape[0] / shape[0])
    box = []
    for axis, (low, high) in enumerate(((cols.min(), cols.max() + 1), (rows.min(), rows.max() + 1))):
        # original pixel x samples the scaled grid at (x + 0.5) * scale - 0.5; keep those within one pixel
        start = max(0, int(np.floor((low - 0.5) / scale[axis] - 0.5)))
        stop = min(shape[1 - axis], int(np.ceil((high + 0.5) / scale[axis] - 0.5)) + 1)
        box.append((start, stop))
    (x0, x1), (y0, y1) = box
    return MaskCrop(resample(mask, scale, (x0, y0), (y1 - y0, x1 - x0)), (x0, y0))
