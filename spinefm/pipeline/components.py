"""Adapters putting the four trained models behind the loop's interfaces (`types.SeedDetector` ...).

Each adapter cuts its inputs exactly as its training stage did (same crops, resizes and uint8
film) and maps outputs back onto image pixels. Thresholds and sizes come from the checkpoint's
`inference` entry; keyword arguments override them. Segmenter and classifier split into `cut`
(numpy, per image) and `infer` (one batched forward), so inputs from many images can share a batch.

Each adapter runs on the device its model is on (move `adapter.model`, e.g. through a LightningModule
holding them). Under a mixed-precision autocast (`infer.py trainer.precision=bf16-mixed`) Med-SA and
the classifier run in bf16; the detector and the point predictor always run in float32, because
their outputs are pixel coordinates (bf16 keeps 8 bits: +-2 px at x = 1000).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from datamodules.maskrcnn import scale_image
from spinefm.checkpoints import load_component
from spinefm.data.patches import crop_patch, patch_origin, resize_square
from spinefm.models.maskrcnn import grey_to_input
from spinefm.models.spine_end import classifier_patch
from spinefm.pipeline.loop import InductiveLoop, LoopConfig
from spinefm.pipeline.patching import clip_box, resample
from spinefm.pipeline.types import Detection, MaskCrop

COMPONENT_NAMES = ("maskrcnn", "medsa", "point_predictor", "spine_end")


def _sides(sides, count: int) -> list[int]:
    return [int(sides)] * count if np.isscalar(sides) else [int(s) for s in sides]


class _Adapter:
    model: torch.nn.Module

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


def _with_info(adapter, info: dict):
    """Keep the checkpoint's `spinefm` entry on an adapter built from it."""
    adapter.info = info
    return adapter


class MaskRCNNDetector(_Adapter):
    """Mask R-CNN on the film scaled to `image_size` on its long side (as in training); each mask is
    resampled onto the original pixel grid over the part where the model drew it, and binarised at
    `mask_threshold` for its centroid and area. Only detections scoring above `score_threshold` are
    kept (set on the model's box head, so no other mask is ever pasted)."""

    def __init__(self, model, image_size: int, score_threshold: float = 0.6, mask_threshold: float = 0.9, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.model.roi_heads.score_thresh = score_threshold
        self.image_size = image_size
        self.score_threshold = score_threshold
        self.mask_threshold = mask_threshold

    @classmethod
    def from_checkpoint(cls, path, device: str = "cpu", **overrides) -> "MaskRCNNDetector":
        model, info = load_component(path, expected="maskrcnn")
        settings = {k: info["inference"][k] for k in ("image_size", "score_threshold", "mask_threshold")}
        return _with_info(cls(model, **{**settings, **overrides}, device=device), info)

    @torch.inference_mode()
    @_full_precision
    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        films = [scale_image(image, self.image_size) for image in images]  # as the training stage scales
        outputs = self.model([grey_to_input(film).to(self.device) for film in films])
        return [self._detections(output, image.shape) for output, image in zip(outputs, images)]

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


class MedSASegmenter(_Adapter):
    """Med-SA on side x side patches (`patch_origin` / `crop_patch` / `resize_square`, as
    `datamodules.medsa`), prompted with one point at the patch centre; the sigmoid of the low-res
    logits goes back onto image pixels: low-res pixel u covers x0 + (u + 0.5) * side / L - 0.5."""

    # Patches per forward pass when not set: batches pay off on a GPU, but on a CPU the TinyViT encoder
    # costs more per patch in a batch (2 cores: 1.1 s alone, 1.7 s each in a batch of 16).
    DEFAULT_BATCH = {"cuda": 16, "cpu": 1}

    def __init__(
        self, model, patch: Mapping, input_size: int, low_res_size: int, prompt: str = "point", batch_size: int | None = None, device: str = "cpu"
    ):
        if prompt != "point":
            raise ValueError(
                f"this Med-SA checkpoint was trained with {prompt!r} prompts, but the pipeline prompts with one point "
                "at the patch centre; train the medsa stage with data.prompt=point"
            )
        self.model = model.to(device).eval()
        self.patch = dict(patch)
        self.input_size = input_size
        self.low_res_size = low_res_size
        self.batch_size = batch_size

    @classmethod
    def from_checkpoint(cls, path, device: str = "cpu", model_overrides: dict | None = None, **overrides) -> "MedSASegmenter":
        model, info = load_component(path, expected="medsa", model_overrides=model_overrides)
        settings = {k: info["inference"][k] for k in ("patch", "input_size", "low_res_size", "prompt")}
        return _with_info(cls(model, **{**settings, **overrides}, device=device), info)

    def cut(self, image: np.ndarray, centres: np.ndarray, sides) -> tuple[np.ndarray, list[tuple[int, int]], list[int]]:
        """(uint8 inputs (N, S, S), patch origins, sides) of the patches centred on the points."""
        sides = _sides(sides, len(centres))
        origins = [patch_origin(c, side) for c, side in zip(centres, sides)]
        inputs = [resize_square(crop_patch(image, o, side), self.input_size) for o, side in zip(origins, sides)]
        return np.stack(inputs).reshape(-1, self.input_size, self.input_size), origins, sides

    @torch.inference_mode()
    def infer(self, inputs: np.ndarray) -> np.ndarray:
        """Probabilities (N, L, L) of uint8 inputs (N, S, S), prompted at the centre, in batches."""
        centre = (self.input_size - 1) / 2
        size = self.batch_size or self.DEFAULT_BATCH.get(self.device.type, 16)
        probabilities = []
        for start in range(0, len(inputs), size):
            batch = torch.from_numpy(inputs[start : start + size]).to(self.device).float().div_(255.0)[:, None]
            points = torch.full((len(batch), 2), centre, device=self.device)
            probabilities.append(self.model(batch, points=points)[:, 0].float().sigmoid().cpu().numpy())
        return np.concatenate(probabilities) if probabilities else np.zeros((0, self.low_res_size, self.low_res_size), np.float32)

    def segment(self, image: np.ndarray, centres: np.ndarray, sides) -> list[MaskCrop]:
        inputs, origins, sides = self.cut(image, np.asarray(centres, dtype=np.float64).reshape(-1, 2), sides)
        return [self.to_image(p, o, s, image.shape) for p, o, s in zip(self.infer(inputs), origins, sides)]

    def to_image(self, probability: np.ndarray, origin, side: int, shape: tuple[int, int]) -> MaskCrop:
        """A low-res probability map of the patch at `origin` as a crop of the image (its in-image part)."""
        box = clip_box(origin, (side, side), *shape)
        if box is None:
            return MaskCrop(np.zeros((0, 0), np.float32), origin)
        xa, ya, xb, yb = box
        scale = self.low_res_size / side
        values = resample(probability, (scale, scale), (xa - origin[0], ya - origin[1]), (yb - ya, xb - xa))
        return MaskCrop(values, (xa, ya))


class PointPredictorAdapter(_Adapter):
    """The point predictor on (N, 3, 2) pixel windows: `PointPredictor.forward` works in pixels."""

    def __init__(self, model, device: str = "cpu"):
        self.model = model.to(device).eval()

    @classmethod
    def from_checkpoint(cls, path, device: str = "cpu", **overrides) -> "PointPredictorAdapter":
        model, info = load_component(path, expected="point_predictor")
        return _with_info(cls(model, **overrides, device=device), info)

    @torch.inference_mode()
    @_full_precision
    def predict(self, windows: np.ndarray, image_sizes: np.ndarray) -> np.ndarray:
        windows = torch.as_tensor(np.asarray(windows), dtype=torch.float32, device=self.device)
        sizes = torch.as_tensor(np.asarray(image_sizes), dtype=torch.float32, device=self.device)
        return self.model(windows, sizes).double().cpu().numpy()


class SpineEndAdapter(_Adapter):
    """The spine-end classifier on `classifier_patch` patches (as `datamodules.spine_end`); returns
    class probabilities (softmax, in `classes` order)."""

    def __init__(
        self,
        model,
        classes: Sequence[str],
        patch: Mapping,
        input_size: int,
        class_prior: Sequence[float] | None = None,
        batch_size: int = 64,
        device: str = "cpu",
    ):
        self.model = model.to(device).eval()
        self.classes = list(classes)
        self.class_prior = None if class_prior is None else list(class_prior)
        self.patch = dict(patch)
        self.input_size = input_size
        self.batch_size = batch_size

    @classmethod
    def from_checkpoint(cls, path, device: str = "cpu", **overrides) -> "SpineEndAdapter":
        model, info = load_component(path, expected="spine_end")
        settings = {k: info["inference"][k] for k in ("classes", "patch", "input_size")}
        settings["class_prior"] = info["inference"].get("class_prior")  # None in checkpoints trained fully balanced
        return _with_info(cls(model, **{**settings, **overrides}, device=device), info)

    def cut(self, image: np.ndarray, centres: np.ndarray, sides) -> np.ndarray:
        sides = _sides(sides, len(centres))
        patches = [classifier_patch(image, c, side, self.input_size) for c, side in zip(centres, sides)]
        return np.stack(patches).reshape(-1, self.input_size, self.input_size)

    @torch.inference_mode()
    def infer(self, patches: np.ndarray) -> np.ndarray:
        """(N, len(classes)) probabilities of uint8 patches (N, S, S)."""
        probabilities = [np.zeros((0, len(self.classes)))]
        for start in range(0, len(patches), self.batch_size):
            batch = torch.from_numpy(patches[start : start + self.batch_size]).to(self.device).float().div_(255.0)[:, None]
            probabilities.append(self.model(batch).float().softmax(dim=1).double().cpu().numpy())
        return np.concatenate(probabilities)

    def classify(self, image: np.ndarray, centres: np.ndarray, sides) -> np.ndarray:
        return self.infer(self.cut(image, np.asarray(centres, dtype=np.float64).reshape(-1, 2), sides))


@dataclass
class Components:
    """The four adapters (each with `.info`, its checkpoint's `spinefm` entry) and the manifest's dataset identity."""

    detector: MaskRCNNDetector
    segmenter: MedSASegmenter
    predictor: PointPredictorAdapter
    classifier: SpineEndAdapter
    dataset: dict


def find_manifest(name, search_root) -> Path:
    """`name` as a path, or for "latest" the newest manifest.json under `search_root` (where
    `train.py experiment=train_all` writes its runs)."""
    if str(name) != "latest":
        return Path(name)
    found = sorted(Path(search_root).glob("**/manifest.json"), key=lambda path: path.stat().st_mtime)
    if not found:
        raise FileNotFoundError(
            f"pipeline.checkpoints=latest: no manifest.json under {search_root}; train first "
            "(python train.py experiment=train_all) or name one with pipeline.checkpoints=PATH"
        )
    return found[-1]


def read_manifest(manifest) -> dict:
    """A manifest.json (path) from `train.py experiment=train_all`, or its already-read dict."""
    if isinstance(manifest, Mapping):
        return dict(manifest)
    path = Path(manifest)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint manifest {path} not found; run `python train.py experiment=train_all` or fix the path")
    return json.loads(path.read_text())


def checkpoint_paths(manifest, which: str = "best") -> dict[str, str]:
    """Component name -> checkpoint path (`best` or `last`, the best falling back to the last)."""
    components = read_manifest(manifest).get("components") or {}
    missing = [name for name in COMPONENT_NAMES if name not in components]
    if missing:
        raise ValueError(f"the manifest lists no checkpoint for {missing}; train those stages (experiment=train_all)")
    paths = {}
    for name in COMPONENT_NAMES:
        entry = components[name]
        path = entry.get("last_checkpoint") if which == "last" else entry.get("best_checkpoint") or entry.get("last_checkpoint")
        if not path:
            raise ValueError(f"the manifest's {name} entry has no {which} checkpoint")
        paths[name] = path
    return paths


def load_components(manifest, device: str = "cpu", which: str = "best", overrides: Mapping | None = None) -> Components:
    """The four adapters from a manifest. overrides: {component name: adapter keyword arguments},
    e.g. {"maskrcnn": {"score_threshold": 0.5}, "medsa": {"batch_size": 4, "model_overrides": {...}}}."""
    paths = checkpoint_paths(manifest, which)
    overrides = {name: dict(value) for name, value in (overrides or {}).items()}
    unknown = sorted(set(overrides) - set(COMPONENT_NAMES))
    if unknown:
        raise ValueError(f"overrides for unknown components {unknown}; expected some of {COMPONENT_NAMES}")
    detector = MaskRCNNDetector.from_checkpoint(paths["maskrcnn"], device, **overrides.get("maskrcnn", {}))
    segmenter = MedSASegmenter.from_checkpoint(paths["medsa"], device, **overrides.get("medsa", {}))
    predictor = PointPredictorAdapter.from_checkpoint(paths["point_predictor"], device, **overrides.get("point_predictor", {}))
    classifier = SpineEndAdapter.from_checkpoint(paths["spine_end"], device, **overrides.get("spine_end", {}))
    return Components(detector, segmenter, predictor, classifier, dict(read_manifest(manifest).get("dataset") or {}))


def load_loop(manifest, config: LoopConfig | Mapping | None = None, device: str = "cpu", which: str = "best", overrides: Mapping | None = None) -> InductiveLoop:
    """An InductiveLoop on a manifest's checkpoints. Settings missing from `config` come from them:
    mask_threshold from Med-SA's inference, the label end levels and level counts from the
    classifier's and the level range from the dataset the components were trained on."""
    c = load_components(manifest, device, which, overrides)
    if not isinstance(config, LoopConfig):
        config = LoopConfig(**{"mask_threshold": c.segmenter.info["inference"]["mask_threshold"], **dict(config or {})})
    labels, classifier = config.labels, c.classifier.info["inference"]
    labels = replace(
        labels,
        end_levels=labels.end_levels if labels.end_levels is not None else classifier.get("end_levels") or {},
        level_counts=labels.level_counts if labels.level_counts is not None else classifier.get("level_counts") or {},
        first_level=labels.first_level or c.dataset.get("first_level"),
        last_level=labels.last_level or c.dataset.get("last_level"),
    )
    return InductiveLoop(c.detector, c.segmenter, c.predictor, c.classifier, replace(config, labels=labels))
