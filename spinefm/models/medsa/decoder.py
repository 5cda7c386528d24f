"""The mask decoder's two-way blocks: segment-anything's, or as the Medical-SAM-Adapter repository
builds them (SpineFM's released Med-SA weights were trained with those).

The two differ only in the tokens' self-attention:
    segment-anything        first block: q = attn(q, q, q), no residual;
                            later blocks: q = q + attn(q + pe, q + pe, q)
    residual_self_attention first block: q = q + attn(q, q, q);
                            later blocks: q = q + pe, then q = q + attn(q, q, q)
Both then normalise, and everything after (cross-attention, MLP, image-to-token attention) is the same.
"""

from segment_anything.modeling.transformer import TwoWayAttentionBlock
from torch import Tensor, nn

DECODER_BLOCKS = ("sam", "residual_self_attention")


class ResidualSelfAttentionBlock(TwoWayAttentionBlock):
    """A segment-anything two-way block with the Medical-SAM-Adapter repository's self-attention."""

    def forward(self, queries: Tensor, keys: Tensor, query_pe: Tensor, key_pe: Tensor) -> tuple[Tensor, Tensor]:
        if not self.skip_first_layer_pe:
            queries = queries + query_pe
        queries = self.norm1(queries + self.self_attn(q=queries, k=queries, v=queries))
        k = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q=queries + query_pe, k=k, v=keys))
        queries = self.norm3(queries + self.mlp(queries))
        keys = self.norm4(keys + self.cross_attn_image_to_token(q=k, k=queries + query_pe, v=queries))
        return queries, keys


def use_decoder_blocks(mask_decoder: nn.Module, kind: str) -> None:
    """Give the decoder's two-way blocks the `kind` of self-attention (`DECODER_BLOCKS`), in place."""
    if kind not in DECODER_BLOCKS:
        raise ValueError(f"unknown decoder_blocks {kind!r}; expected one of {DECODER_BLOCKS}")
    if kind == "residual_self_attention":
        for block in mask_decoder.transformer.layers:
            block.__class__ = ResidualSelfAttentionBlock  # same parameters, another forward
