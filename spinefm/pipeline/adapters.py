"""The adapters that put trained models behind the pipeline's roles (`types.Detector` ...).

Each adapter cuts its inputs exactly as its training stage did (same crops, resizes and uint8
film) and maps outputs back onto image pixels. Its settings come from the checkpoint's `inference`
entry (`settings`); keyword arguments override them. Segmenter and classifier cut the patches of
every request (numpy), then run ONE batched forward over all of them.

Each adapter runs on the device its model is on (move `adapter.model`, e.g. through a LightningModule
holding them). Under a mixed-precision autocast (`infer.py trainer.precision=bf16-mixed`) Med-SA and
the classifier run in bf16; the detector and the point predictor always run in float32, because
their outputs are pixel coordinates (bf16 keeps 8 bits: +-2 px at x = 1000).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import torch

from spinefm.checkpoints import load_component
from spinefm.data.patches import classifier_patch, crop_patch, patch_origin, resize_square, scale_image
from spinefm.models.maskrcnn import grey_to_input
from spinefm.pipeline.patching import clip_box, resample
from spinefm.pipeline.requests import split
from spinefm.pipeline.roles import register_adapter
from spinefm.pipeline.types import Detection, MaskCrop, Patches
from spinefm.runtime import CpuRuntimeModule


class Adapter:
    """A trained model behind a role. role: one of `roles.ROLES`; settings: the checkpoint's
    `inference` entries the constructor takes; info: the checkpoint's `spinefm` entry ({} if built directly)."""

    role: ClassVar[str]
    settings: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model):
        self.model = model.eval()
        self.info: dict = {}

    @classmethod
    def from_checkpoint(cls, path, device: str = "cpu", model_overrides: dict | None = None, **overrides) -> Adapter:
        return cls.from_loaded(*load_component(path, model_overrides), device, **overrides)

    @classmethod
    def from_loaded(cls, model, info: dict, device: str = "cpu", **overrides) -> Adapter:
        """The adapter on a model and its checkpoint's `spinefm` entry (`checkpoints.load_component`)."""
        if info["role"] != cls.role:
            raise ValueError(
                f"a {info['component']} checkpoint serves the {info['role']} role, "
                f"but {cls.__name__} the {cls.role} role"
            )
        settings = {key: info["inference"][key] for key in cls.settings if key in info["inference"]}
        adapter = cls(model.to(device), **{**settings, **overrides})
        adapter.info = info
        return adapter

    @torch.inference_mode()
    def batched(self, patches: np.ndarray, size: int, forward, shape: tuple[int, ...]) -> np.ndarray:
        """`forward` on uint8 patches (N, S, S), `size` at a time, each batch a float tensor (B, 1, S, S) in
        [0, 1] on the model's device; its numpy outputs (B, *shape) concatenated."""
        outputs = [np.zeros((0, *shape), np.float32)]
        for start in range(0, len(patches), size):
            outputs.append(
                forward(torch.from_numpy(patches[start : start + size]).to(self.device).float().div_(255.0)[:, None])
            )
        return np.concatenate(outputs)

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are (the CPU for a model without any)."""
        parameters = self.model.parameters() if isinstance(self.model, torch.nn.Module) else iter(())
        return next((p.device for p in parameters), torch.device("cpu"))


def _full_precision(method):
    """Run `method` with autocast off, so coordinates stay float32 under a mixed-precision run."""

    @functools.wraps(method)
    def wrapped(self, *args, **kwargs):
        with torch.autocast(self.device.type, enabled=False):
            return method(self, *args, **kwargs)

    return wrapped


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
    @_full_precision
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


@register_adapter("medsa")
class MedSAAdapter(Adapter):
    """Med-SA on side x side patches (`patch_origin` / `crop_patch` / `resize_square`, as
    `datamodules.medsa`), prompted with one point at the patch centre; the sigmoid of the low-res
    logits goes back onto image pixels: low-res pixel u covers x0 + (u + 0.5) * side / L - 0.5.

    cpu_runtime: what runs the image encoder (nearly all of a film's time) on the CPU: `openvino`,
    `openvino_bf16` or `onnxruntime` (an ONNX export, made on first use and cached by the weights:
    `spinefm.runtime`), or `torch`. On a GPU the encoder always runs in torch.
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
        if cpu_runtime != "torch":
            encoder = self.model.image_encoder
            self.model.image_encoder = CpuRuntimeModule(encoder, cpu_runtime, identity=self.model.base_identity())

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
        centre = (self.input_size - 1) / 2

        def forward(batch: torch.Tensor) -> np.ndarray:
            points = torch.full((len(batch), 2), centre, device=self.device)
            return self.model(batch, points=points)[:, 0].float().sigmoid().cpu().numpy()

        size = self.batch_size or self.DEFAULT_BATCH.get(self.device.type, 16)
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


@register_adapter("point_predictor")
class PointPredictorAdapter(Adapter):
    """The point predictor on (N, 3, 2) pixel windows: `PointPredictor.forward` works in pixels."""

    role = "predictor"

    @torch.inference_mode()
    @_full_precision
    def predict(self, windows: np.ndarray, image_sizes: np.ndarray) -> np.ndarray:
        windows = torch.as_tensor(np.asarray(windows), dtype=torch.float32, device=self.device)
        sizes = torch.as_tensor(np.asarray(image_sizes), dtype=torch.float32, device=self.device)
        return self.model(windows, sizes).double().cpu().numpy()


@register_adapter("spine_end")
class SpineEndAdapter(Adapter):
    """The spine-end classifier on `classifier_patch` patches (as `datamodules.spine_end`); returns
    class probabilities (softmax, in `classes` order). class_prior: None in checkpoints trained fully balanced.
    Test-time averaging: the probabilities are the mean over patch sides scaled by each of `scales`
    and, with `hflip`, their left-right mirrors (training flips left-right too); one pass is
    `scales=(1.0,), hflip=False`."""

    role = "classifier"
    settings = ("classes", "patch", "input_size", "class_prior")

    def __init__(
        self,
        model,
        classes: Sequence[str],
        patch: Mapping,
        input_size: int,
        class_prior: Sequence[float] | None = None,
        batch_size: int = 64,
        scales: Sequence[float] = (0.85, 1.0, 1.15),
        hflip: bool = True,
    ):
        super().__init__(model)
        if not scales or min(scales) <= 0:
            raise ValueError(f"spine_end scales must be positive side factors, not {list(scales)}")
        self.scales, self.hflip = [float(s) for s in scales], bool(hflip)
        self.classes = list(classes)
        self.class_prior = None if class_prior is None else list(class_prior)
        self.patch = dict(patch)
        self.input_size = input_size
        self.batch_size = batch_size

    def classify(self, requests: Sequence[Patches]) -> list[np.ndarray]:
        counts = [len(r.centres) for r in requests]
        probabilities = []
        for scale in self.scales:
            patches = np.concatenate(
                [self.cut(r.film, r.centres, [max(1, round(side * scale)) for side in r.sides]) for r in requests]
            )
            probabilities.append(self.infer(patches))
            if self.hflip:
                probabilities.append(self.infer(np.ascontiguousarray(patches[:, :, ::-1])))
        return split(np.mean(probabilities, axis=0), counts)

    def cut(self, film: np.ndarray, centres: np.ndarray, sides: Sequence[int]) -> np.ndarray:
        patches = [classifier_patch(film, c, side, self.input_size) for c, side in zip(centres, sides)]
        return np.stack(patches).reshape(-1, self.input_size, self.input_size)

    def infer(self, patches: np.ndarray) -> np.ndarray:
        """(N, len(classes)) probabilities of uint8 patches (N, S, S)."""

        def forward(batch: torch.Tensor) -> np.ndarray:
            return self.model(batch).float().softmax(dim=1).double().cpu().numpy()

        return self.batched(patches, self.batch_size, forward, (len(self.classes),))
