"""Med-SA: a SAM-family segmenter with adapters in its image encoder, one prompt per image."""

import copy
from pathlib import Path

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from spinefm.models.medsa.adapter import AdapterLayer
from spinefm.models.medsa.backbones import build_backbone, tiny_config
from spinefm.models.medsa.decoder import use_decoder_blocks
from spinefm.models.medsa.inject import inject_adapters
from spinefm.models.pretrained import init_weights

TRAINABLE_GROUPS = ("adapters", "mask_decoder", "prompt_encoder", "image_encoder", "iou_head")


class MedSA(nn.Module):
    """SAM-family image encoder with Med-SA adapters, SAM prompt encoder and mask decoder.

    Trainable groups (everything else gets requires_grad=False):
      adapters        the adapters injected into every encoder block
      mask_decoder    the mask decoder, except its IoU prediction head
      iou_head        the IoU prediction head: nothing here trains it, and under DDP a parameter
                      without a gradient breaks the default strategy, so it is frozen unless listed
      prompt_encoder  the prompt encoder, except its mask-prompt branch (never used here); the
                      point and box embeddings a batch does not use get no gradient (DDP: use one
                      prompt type or find_unused_parameters)
      image_encoder   the base encoder weights (full fine-tuning; the adapters are a separate group)
    A BatchNorm whose parameters are frozen (LiteMedSAM's encoder) stays in eval mode in train().

    adapted_blocks: the encoder's last blocks that get adapters (null: all, as Med-SA); fewer cost
    less to train, as no backward pass runs through the blocks before them.
    normalise_input: images are standardised with the backbone's pixel mean and std (false: they go
    to the encoder in [0, 1] as they are, the Medical-SAM-Adapter repository's convention).
    decoder_blocks: `sam` | `residual_self_attention` (that repository's decoder: `decoder.py`).
    input_size: the encoder's input side (litemedsam only; None: the backbone's). LiteMedSAM at 160 px
    instead of 256 costs about a quarter of the encoder time on a CPU, for masks 1.6x coarser.
    init_checkpoint: a Med-SA checkpoint (train.py's or `spinefm.original`'s) whose weights replace the
    base model's where it has them; build the model as that checkpoint's (its `model` entry).
    """

    def __init__(
        self,
        backbone: str = "tiny",
        checkpoint: str | None = None,
        tiny: dict | None = None,
        adapter_ratio: float = 0.25,
        mlp_adapter_scale: float = 0.5,
        adapted_blocks: int | None = None,
        trainable: tuple[str, ...] = ("adapters", "mask_decoder"),
        allow_random: bool = False,
        normalise_input: bool = True,
        decoder_blocks: str = "sam",
        init_checkpoint: str | None = None,
        input_size: int | None = None,
    ) -> None:
        super().__init__()
        trainable = tuple(trainable)
        unknown = sorted(set(trainable) - set(TRAINABLE_GROUPS))
        if unknown:
            raise ValueError(f"unknown trainable groups {unknown}; expected any of {TRAINABLE_GROUPS}")
        parts = build_backbone(backbone, checkpoint, tiny, allow_random, input_size)
        self.image_encoder = parts.image_encoder
        self.prompt_encoder = parts.prompt_encoder
        self.mask_decoder = parts.mask_decoder
        inject_adapters(self.image_encoder, adapter_ratio, mlp_adapter_scale, adapted_blocks)
        use_decoder_blocks(self.mask_decoder, decoder_blocks)
        if init_checkpoint:  # over the base weights, before the adapters' zero start is relied on
            self.load_state_dict(init_weights(init_checkpoint, self.state_dict(), subset=True), strict=False)
        mean, std = (parts.pixel_mean, parts.pixel_std) if normalise_input else ((0.0,) * 3, (1.0,) * 3)
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.input_size = parts.input_size
        self.low_res_size = 4 * self.prompt_encoder.image_embedding_size[0]
        self._identity = {
            "backbone": backbone,
            "checkpoint": None if checkpoint is None else str(Path(checkpoint).expanduser().resolve()),
            "tiny": tiny_config(tiny) if backbone == "tiny" else None,
            "adapter_ratio": float(adapter_ratio),
            "mlp_adapter_scale": float(mlp_adapter_scale),
            "adapted_blocks": adapted_blocks,
            "trainable": list(trainable),
            "allow_random": bool(allow_random),
            "normalise_input": bool(normalise_input),
            "decoder_blocks": decoder_blocks,
            "input_size": input_size,
            # part of the base: the weights it holds and training leaves frozen are not saved again
            "init_checkpoint": None if init_checkpoint is None else str(Path(init_checkpoint).expanduser().resolve()),
        }
        groups = self.parameter_groups()
        for name, parameter in self.named_parameters():
            parameter.requires_grad_(groups[name] in trainable)
        self.train()

    def forward(
        self, images: torch.Tensor, points: torch.Tensor | None = None, boxes: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Low-res mask logits (B, 1, low_res_size, low_res_size) for image i prompted by points[i] and/or boxes[i].

        images: float (B, 1 or 3, input_size, input_size) in [0, 1]; points: (B, 2) positive point (x, y) and
        boxes: (B, 4) xyxy, both in input pixels.
        """
        self._check_inputs(images, points, boxes)
        return self.decode(self.embed(images), points, boxes)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Image embeddings (B, C, h, w) of float images in [0, 1], grey repeated to 3 channels."""
        images = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
        return self.image_encoder((images - self.pixel_mean) / self.pixel_std)

    def decode(
        self, image_embeddings: torch.Tensor, points: torch.Tensor | None = None, boxes: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Single-mask low-res logits, pairing image embedding i with prompt i."""
        return self.decode_embedded(image_embeddings, *self.embed_prompts(points, boxes))

    def embed_prompts(
        self, points: torch.Tensor | None = None, boxes: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(sparse, dense) prompt embeddings and the image's positional encoding."""
        # Prompts are embedded in float32 even under autocast: a bf16 positional encoding of
        # pixel coordinates is too coarse.
        with torch.autocast(self.pixel_mean.device.type, enabled=False):
            point_prompt = None
            if points is not None:
                points = points.float()
                point_prompt = (points[:, None, :], points.new_ones(len(points), 1))
            sparse, dense = self.prompt_encoder(
                points=point_prompt, boxes=None if boxes is None else boxes.float(), masks=None
            )
            return sparse, dense, self.prompt_encoder.get_dense_pe()

    def decode_embedded(
        self, image_embeddings: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor, image_pe: torch.Tensor
    ) -> torch.Tensor:
        """Single-mask low-res logits of image embeddings and embedded prompts (`embed_prompts`)."""
        # SAM's decoder repeats the image embedding once per prompt (one image, many prompts). To
        # pair image i with prompt i, give it one zero embedding and fold the real ones into the
        # dense prompt term: it then forms 0 + (dense + embedding), bit for bit the sum
        # embedding + dense it forms for one image with one prompt.
        zero = image_embeddings.new_zeros((1, *image_embeddings.shape[1:]))
        masks, _ = self.mask_decoder(
            image_embeddings=zero,
            image_pe=image_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense + image_embeddings,
            multimask_output=False,
        )
        return masks

    def prompted_at(self, point: tuple[float, float]) -> "FixedPoint":
        """This model with one point prompt, the same for every image (the pipeline's patch centre)."""
        return FixedPoint(self, point).train(self.training)

    def train(self, mode: bool = True) -> "MedSA":
        super().train(mode)
        # A frozen BatchNorm must neither normalise with batch statistics nor update its running ones.
        for module in self.modules():
            if isinstance(module, _BatchNorm) and not any(p.requires_grad for p in module.parameters()):
                module.eval()
        return self

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The trainable parameters (and the running statistics of trainable BatchNorms)."""
        keys = self._trainable_keys()
        return {k: v for k, v in self.state_dict().items() if k in keys}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load what trainable_state_dict() returned; any missing, extra or reshaped key raises."""
        expected = self._trainable_keys()
        current = self.state_dict()
        missing = sorted(expected - set(state))
        unexpected = sorted(set(state) - expected)
        reshaped = sorted(k for k in expected & set(state) if tuple(state[k].shape) != tuple(current[k].shape))
        if missing or unexpected or reshaped:
            raise ValueError(
                f"trained parameters do not fit this MedSA (backbone={self._identity['backbone']}, "
                f"trainable={self._identity['trainable']}): missing {missing[:3]}, unexpected {unexpected[:3]}, "
                f"reshaped {reshaped[:3]} ({len(missing)}/{len(unexpected)}/{len(reshaped)} in all). "
                "Rebuild the model with MedSA(**base_identity) saved with these parameters."
            )
        self.load_state_dict(state, strict=False)
        self.train(self.training)  # refreshes TinyViT's cached eval-mode attention biases

    def base_identity(self) -> dict:
        """Plain arguments that rebuild the untrained base model: MedSA(**identity)."""
        return copy.deepcopy(self._identity)

    def parameter_groups(self) -> dict[str, str | None]:
        """Parameter name -> its group in TRAINABLE_GROUPS (None: never trained)."""
        adapters = {
            f"{prefix}.{name}"
            for prefix, module in self.named_modules()
            if isinstance(module, AdapterLayer)
            for name, _ in module.named_parameters()
        }
        groups = {}
        for name, _ in self.named_parameters():
            if name in adapters:
                groups[name] = "adapters"
            elif name.startswith("mask_decoder.iou_prediction_head."):
                groups[name] = "iou_head"
            elif name.startswith("prompt_encoder.mask_downscaling."):
                groups[name] = None
            else:
                groups[name] = name.split(".", 1)[0]
        return groups

    def _trainable_keys(self) -> set[str]:
        params = {n for n, p in self.named_parameters() if p.requires_grad}
        owners = {n.rpartition(".")[0] for n in params}
        return {k for k in self.state_dict() if k in params or k.rpartition(".")[0] in owners}

    def _check_inputs(self, images: torch.Tensor, points: torch.Tensor | None, boxes: torch.Tensor | None) -> None:
        side = self.input_size
        if images.ndim != 4 or images.shape[1] not in (1, 3) or tuple(images.shape[2:]) != (side, side):
            raise ValueError(f"images must be (B, 1 or 3, {side}, {side}), got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"images must be float in [0, 1], got {images.dtype}")
        if points is None and boxes is None:
            raise ValueError("give a prompt: points, boxes or both")
        for name, prompt, width in (("points", points, 2), ("boxes", boxes, 4)):
            if prompt is not None and tuple(prompt.shape) != (len(images), width):
                raise ValueError(f"{name} must be ({len(images)}, {width}), got {tuple(prompt.shape)}")


class FixedPoint(nn.Module):
    """A MedSA prompted at one point for every image: images (B, 1 or 3, S, S) in [0, 1] -> low-res
    logits (B, 1, L, L). The prompt's embeddings are constants, so a CPU runtime exports the whole
    forward as one graph (`spinefm.runtime`); taken on the model's device when made."""

    def __init__(self, model: MedSA, point: tuple[float, float]):
        super().__init__()
        self.model = model
        with torch.no_grad():
            prompts = model.embed_prompts(torch.tensor([point], dtype=torch.float32, device=model.pixel_mean.device))
        for name, value in zip(("sparse", "dense", "image_pe"), prompts):
            self.register_buffer(name, value, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        sparse = self.sparse.expand(len(images), -1, -1)
        return self.model.decode_embedded(self.model.embed(images), sparse, self.dense, self.image_pe)
