"""Convert SpineFM's released weight files into this framework's checkpoints and a manifest.

The original inference (SpineFM's `main.py`, `utils.py`, `settings.py`) fixes what is recorded here:
Mask R-CNN seeds from detections scoring over 0.6 with masks binarised at 0.9; Med-SA segments a
600 px (NHANES II) or 300 px (CSXA) patch resized to 1024 px, in [0, 1] without normalisation,
prompted at its centre; the classifier sees a 512 px (256 px) patch at 224 px, in [0, 1]; the point
predictor works on x / W, y / H.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from spinefm.checkpoints import FORMAT_VERSION, MODEL_PREFIX
from spinefm.data.classes import class_names
from spinefm.errors import UserError, reason
from spinefm.io_utils import atomic_write_bytes, atomic_write_json
from spinefm.models.maskrcnn import build_maskrcnn
from spinefm.models.medsa import MedSA
from spinefm.models.medsa.model import TRAINABLE_GROUPS
from spinefm.models.point_predictor import PointPredictor
from spinefm.models.pretrained import state_dict_in
from spinefm.models.spine_end import SpineEndClassifier
from spinefm.original import layouts
from spinefm.state_dicts import counted, key_mismatch
from spinefm.training.maskrcnn import MaskRCNNModule
from spinefm.training.medsa import MedSAModule
from spinefm.training.point_predictor import PointPredictorModule
from spinefm.training.spine_end import SpineEndModule

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# Per dataset, as the original main.py sets them: patch sides and the final masks' threshold
# (NHANES II masks are binarised at 0.9; CSXA's are kept as logits, read here at 0.5).
DATASETS = {
    "nhanes": {"medsa_side": 600, "classifier_side": 512, "final_threshold": 0.9},
    "csxa": {"medsa_side": 300, "classifier_side": 256, "final_threshold": 0.5},
}
# name pattern of each original file in a weights folder
PATTERNS = {
    "maskrcnn": "mask_rcnn_*.pth",
    "medsa": "MSA_*.pth",
    "point_predictor": "point_predictor*.pth",
    "spine_end": "resnet50_*_class_*px_*.pth",
    "sam": "sam_vit_b_01ec64.pth",
}
EXPECTED = {
    "maskrcnn": "a state dict of torchvision's maskrcnn_resnet50_fpn with 2-class box and mask predictors",
    "medsa": "a dict whose 'state_dict' is a whole Medical-SAM-Adapter model on SAM ViT-B",
    "point_predictor": "the state dict of SpineFM's point predictor (fc1: Linear(6, 50), fc2: Linear(50, 2))",
    "spine_end": "a state dict of torchvision's resnet50 with fc replaced by Linear(2048, classes)",
}
# The stage module whose checkpoints each converted one imitates (component, role, adapter, builder).
STAGE_MODULES = {m.component: m for m in (MaskRCNNModule, MedSAModule, PointPredictorModule, SpineEndModule)}
MASKRCNN_MODEL = {"backbone": "resnet50_fpn", "num_classes": 2, "min_size": 800, "max_size": 1333}
DETECTOR = {"image_size": 1333, "score_threshold": 0.6, "mask_threshold": 0.9, "class_mode": "single"}
WALK_MASK_THRESHOLD = 0.9
CLASSIFIER_INPUT = 224
SAM_VIT_B = {"backbone": "sam_vit_b"}


@dataclass(frozen=True)
class OriginalFiles:
    maskrcnn: Path
    medsa: Path
    point_predictor: Path
    spine_end: Path
    sam: Path


def find_files(weights_dir, dataset: str, given: dict | None = None) -> OriginalFiles:
    """Each original file: the one `given` names, else the one in `weights_dir` that matches its
    pattern (where several match, the one naming the dataset)."""
    weights_dir = Path(weights_dir)
    if not weights_dir.is_dir():
        raise UserError(f"weights folder {weights_dir} not found; name the folder of SpineFM's released .pth files")
    found = {}
    for name, pattern in PATTERNS.items():
        if (given or {}).get(name):
            found[name] = Path(given[name])
            continue
        matches = sorted(weights_dir.glob(pattern))
        if len(matches) > 1:
            matches = [m for m in matches if dataset in m.name.lower()] or matches
        if len(matches) != 1:
            option = "--" + name.replace("_", "-")
            state = f"{len(matches)} files ({', '.join(m.name for m in matches)})" if matches else "none"
            raise UserError(f"{weights_dir}: {state} match {pattern}; name the file with {option} FILE")
        found[name] = matches[0]
    for name, path in found.items():
        if not path.is_file():
            raise UserError(f"{name} file {path} not found")
    return OriginalFiles(**found)


def convert(weights_dir, dataset: str, out, given: dict | None = None, medsa_base: dict | None = None) -> Path:
    """Write a checkpoint per component and `manifest.json` (last) into `out`; returns the manifest.

    given: {component or "sam": file} in place of the folder's; medsa_base: the Med-SA backbone
    ({"backbone": ..., "tiny": ...}; SAM ViT-B by default).
    """
    if dataset not in DATASETS:
        raise UserError(f"SpineFM released weights for {sorted(DATASETS)}, not {dataset!r}")
    files = find_files(weights_dir, dataset, given)
    identity = dataset_identity(dataset)
    settings = DATASETS[dataset]
    checkpoints = {  # the cheap ones first: a wrong file is named before SAM's weights are read
        "point_predictor": point_predictor_checkpoint(files.point_predictor, identity),
        "spine_end": classifier_checkpoint(files.spine_end, settings, identity),
        "maskrcnn": maskrcnn_checkpoint(files.maskrcnn, identity),
        "medsa": medsa_checkpoint(files.medsa, files.sam, settings, identity, medsa_base or SAM_VIT_B),
    }
    out = Path(out).resolve()
    components = {}
    for name, checkpoint in checkpoints.items():
        path = out / f"{name}.ckpt"
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getvalue())
        source = str(getattr(files, name).resolve())
        components[name] = {"best_checkpoint": str(path), "last_checkpoint": str(path), "converted_from": source}
    dataset_entry = {key: identity[key] for key in ("name", "view", "first_level", "last_level")}
    return atomic_write_json(out / "manifest.json", {"dataset": dataset_entry, "components": components})


def dataset_identity(dataset: str) -> dict:
    """The dataset's name, view, level range and end levels, from its config."""
    config = OmegaConf.to_container(OmegaConf.load(CONFIGS / "dataset" / f"{dataset}.yaml"), resolve=False)
    return {key: config.get(key) for key in ("name", "view", "first_level", "last_level", "end_levels")}


def maskrcnn_checkpoint(path: Path, dataset: dict) -> dict:
    model = build_maskrcnn(**MASKRCNN_MODEL)
    fit(model, layouts.maskrcnn_state(load_state(path, "maskrcnn")), path, "maskrcnn")
    return checkpoint("maskrcnn", model.state_dict(), MASKRCNN_MODEL, DETECTOR, dataset)


def medsa_checkpoint(path: Path, sam: Path, settings: dict, dataset: dict, base: dict) -> dict:
    """Med-SA over the SAM weights it was trained on: the checkpoint holds the parameter groups
    whose weights differ from SAM's (as our own Med-SA checkpoints do), so loading it also needs
    the SAM file; a group left out must equal SAM's, which is checked."""
    spec = {**base, "checkpoint": str(sam), "normalise_input": False, "decoder_blocks": "residual_self_attention"}
    try:
        over_sam = MedSA(**spec, trainable=TRAINABLE_GROUPS)
    except (ValueError, FileNotFoundError) as error:  # the SAM file's own message names it and what fits
        raise UserError(f"SAM weights: {error}") from error
    state = layouts.medsa_state(load_state(path, "medsa"), tuple(over_sam.image_encoder.pos_embed.shape))
    fit(over_sam, state, path, "medsa", load=False)
    groups = over_sam.parameter_groups()
    sam_parameters = dict(over_sam.named_parameters())
    changed = {groups[key] for key in layouts.changed_keys(state, sam_parameters)}
    trainable = [group for group in TRAINABLE_GROUPS if group in changed]
    model = MedSA(**spec, trainable=trainable)
    model.load_trainable_state_dict({key: state[key] for key in model.trainable_state_dict()})
    unused = {key for key, group in groups.items() if group is None}  # the mask-prompt branch
    differ = [key for key in layouts.changed_keys(state, model.state_dict()) if key not in unused]
    if differ:
        raise UserError(
            f"{path} was not trained over the SAM weights {sam}: {counted(differ)} differ from them; "
            "name the sam_vit_b_01ec64.pth it was trained on with --sam"
        )
    side = settings["medsa_side"]
    inference = {
        "patch": {"mode": "fixed", "side_px": side, "spacing_factor": 3.0},
        "prompt": "point",
        "mask_threshold": WALK_MASK_THRESHOLD,
        "final_threshold": settings["final_threshold"],
        "input_size": model.input_size,
        "low_res_size": model.low_res_size,
    }
    info = checkpoint("medsa", model.trainable_state_dict(), model.base_identity(), inference, dataset)
    info["spinefm"]["trainable_only"] = True
    return info


def point_predictor_checkpoint(path: Path, dataset: dict) -> dict:
    state = layouts.point_predictor_state(load_state(path, "point_predictor"))
    hidden = state["mlp.0.weight"].shape[0] if "mlp.0.weight" in state else 50
    config = {"parameterisation": "absolute", "hidden": [hidden], "residual": False}
    model = PointPredictor(**config)
    fit(model, state, path, "point_predictor", original_key=layouts.point_predictor_original_key)
    return checkpoint("point_predictor", model.state_dict(), config, {}, dataset)


def classifier_checkpoint(path: Path, settings: dict, dataset: dict) -> dict:
    """The original's classes are SpineFM's end classes (NHANES II: background, vertebra, C2, S1 =
    background, vertebra, top_end, bottom_end for the dataset's end levels; CSXA: the first two)."""
    state = layouts.classifier_state(load_state(path, "spine_end"))
    classes = class_names(dataset["end_levels"])
    found = state["net.fc.weight"].shape[0] if "net.fc.weight" in state else None
    if found is not None and found != len(classes):
        raise UserError(
            f"{path} classifies {found} classes, but SpineFM's {dataset['name']} classifier has {len(classes)} "
            f"({', '.join(classes)}); is it another dataset's file?"
        )
    config = {"arch": "resnet50", "num_classes": len(classes), "in_channels": 1, "mean": 0.0, "std": 1.0}
    model = SpineEndClassifier(**config)
    fit(model, state, path, "spine_end", original_key=layouts.classifier_original_key)
    side = settings["classifier_side"]
    inference = {
        "end_levels": dataset["end_levels"],
        "classes": classes,
        "input_size": CLASSIFIER_INPUT,
        "patch": {"mode": "fixed", "side_px": side, "spacing_factor": 3.0},
        "level_counts": {},
        "class_prior": None,
    }
    return checkpoint("spine_end", model.state_dict(), {**config, "init_checkpoint": None}, inference, dataset)


def checkpoint(component: str, state: dict, model: dict, inference: dict, dataset: dict) -> dict:
    """A component checkpoint as train.py writes it (`spinefm.checkpoints`)."""
    info = {"format_version": FORMAT_VERSION, **STAGE_MODULES[component].identity()}
    info.update(
        model=model,
        inference=inference,
        dataset={key: dataset[key] for key in ("name", "view", "first_level", "last_level")},
        trainable_only=False,
    )
    return {"state_dict": {MODEL_PREFIX + key: value for key, value in state.items()}, "spinefm": info}


def load_state(path: Path, component: str) -> dict:
    """The state dict in an original file (Med-SA's under 'state_dict'), read weights-only."""
    # The Med-SA repository's checkpoints also hold numpy scalars (its best score).
    dtypes = [t for t in vars(np.dtypes).values() if isinstance(t, type)]
    numpy_scalars = [np._core.multiarray.scalar, np.dtype, *dtypes]
    try:
        with torch.serialization.safe_globals(numpy_scalars):
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise UserError(
            f"{path} could not be read as a PyTorch file ({reason(error, first_sentence=True)}); "
            f"expected {EXPECTED[component]}"
        ) from error
    if isinstance(loaded, dict):
        loaded = state_dict_in(loaded)
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise UserError(f"{path} holds no state dict; expected {EXPECTED[component]}")
    return loaded


def fit(model: nn.Module, state: dict, path: Path, component: str, load: bool = True, original_key=str) -> None:
    """Load `state` into `model`, or name what does not fit (missing and unexpected keys, other shapes),
    in the original file's key names where `original_key` maps them back."""
    own = model.state_dict()
    mismatch = key_mismatch(
        {original_key(k): v for k, v in own.items()}, {original_key(k): v for k, v in state.items()}
    )
    if mismatch:
        raise UserError(f"{path} does not fit: {mismatch}; expected {EXPECTED[component]}")
    if load:
        model.load_state_dict(state)
