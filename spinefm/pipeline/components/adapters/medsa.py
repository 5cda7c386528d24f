"""The segmenter role: Med-SA prompted at each patch's centre."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from spinefm.data.patches import crop_patch, patch_origin, resize_square
from spinefm.pipeline.components.adapters.base import Adapter
from spinefm.pipeline.components.roles import register_adapter
from spinefm.pipeline.core.patching import clip_box, resample
from spinefm.pipeline.core.types import MaskCrop, Patches
from spinefm.runtime import CpuRuntimeModule


@register_adapter("medsa")
class MedSAAdapter(Adapter):
    """Med-SA on side x side patches (`patch_origin` / `crop_patch` / `resize_square`, as
    `datamodules.medsa`), prompted with one point at the patch centre; the sigmoid of the low-res
    logits goes back onto image pixels: low-res pixel u covers x0 + (u + 0.5) * side / L - 0.5.

    cpu_runtime: what runs Med-SA on the CPU: `openvino`, `openvino_bf16` or `onnxruntime` (an ONNX
    export of the whole forward, encoder and decoder, with the centre prompt's embeddings as
    constants: made on first use and cached by the weights, `spinefm.runtime`), or `torch`. On a GPU
    the model always runs in torch. cpu_streams: patches the export runs side by side, each on its
    share of the threads (every patch of a lockstep step goes to it in one call).
    """

    role = "segmenter"
    settings = ("patch", "input_size", "low_res_size", "prompt")
    # Patches per forward pass when not set: batches pay off on a GPU, but on a CPU the TinyViT encoder
    # costs more per patch in a batch (2 cores: 1.1 s alone, 1.7 s each in a batch of 16).
    DEFAULT_BATCH = {"cuda": 16, "cpu": 1}

    def __init__(
        self,
        model,
        patch: Mapping,
        input_size: int,
        low_res_size: int,
        prompt: str = "point",
        batch_size: int | None = None,
        cpu_runtime: str = "openvino",
        cpu_streams: int = 2,
    ):
        if prompt != "point":
            raise ValueError(
                f"this Med-SA checkpoint was trained with {prompt!r} prompts, but the pipeline prompts with one point "
                "at the patch centre; train the medsa stage with data.prompt=point"
            )
        super().__init__(model)
        self.patch = dict(patch)
        self.input_size = input_size
        self.low_res_size = low_res_size
        self.batch_size = batch_size
        self.centre = (input_size - 1) / 2
        self.exported = None
        if cpu_runtime != "torch":
            prompted = self.model.prompted_at((self.centre, self.centre))
            identity = {**self.model.base_identity(), "point": self.centre}
            self.exported = CpuRuntimeModule(prompted, cpu_runtime, identity=identity, streams=cpu_streams)

    def networks(self) -> list[torch.nn.Module]:
        """The model, and its export where it runs instead (on the CPU; each batch calls one of them)."""
        return [self.model] + ([self.exported] if self.exported is not None else [])

    def segment(self, requests: Sequence[Patches]) -> list[list[MaskCrop]]:
        cuts = [self.cut(r.film, r.centres, r.sides) for r in requests]
        probabilities = iter(self.infer(np.concatenate([inputs for inputs, _ in cuts])))
        return [
            [self.to_image(next(probabilities), origin, side, r.film.shape) for origin, side in zip(origins, r.sides)]
            for r, (_, origins) in zip(requests, cuts)
        ]

    def cut(
        self, film: np.ndarray, centres: np.ndarray, sides: Sequence[int]
    ) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """(uint8 inputs (N, S, S), patch origins) of the patches centred on the points."""
        origins = [patch_origin(c, side) for c, side in zip(centres, sides)]
        inputs = [resize_square(crop_patch(film, o, side), self.input_size) for o, side in zip(origins, sides)]
        return np.stack(inputs).reshape(-1, self.input_size, self.input_size), origins

    def infer(self, inputs: np.ndarray) -> np.ndarray:
        """Probabilities (N, L, L) of uint8 inputs (N, S, S), prompted at the centre, in batches."""

        def forward(batch: torch.Tensor) -> np.ndarray:
            if self.exported is not None and batch.device.type == "cpu":
                logits = self.exported(batch)
            else:
                logits = self.model(batch, points=torch.full((len(batch), 2), self.centre, device=batch.device))
            return logits[:, 0].float().sigmoid().cpu().numpy()

        exported = self.exported is not None and self.device.type == "cpu"
        size = self.batch_size or (max(len(inputs), 1) if exported else self.DEFAULT_BATCH.get(self.device.type, 16))
        return self.batched(inputs, size, forward, (self.low_res_size, self.low_res_size))

    def to_image(self, probability: np.ndarray, origin, side: int, shape: tuple[int, int]) -> MaskCrop:
        """A low-res probability map of the patch at `origin` as a crop of the image (its in-image part)."""
        box = clip_box(origin, (side, side), *shape)
        if box is None:
            return MaskCrop(np.zeros((0, 0), np.float32), origin)
        xa, ya, xb, yb = box
        scale = self.low_res_size / side
        values = resample(probability, (scale, scale), (xa - origin[0], ya - origin[1]), (yb - ya, xb - xa))
        return MaskCrop(values, (xa, ya))
