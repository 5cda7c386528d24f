"""SpineFM's released architectures, built as its repository builds them, for the conversion tests
(`spinefm.original`): torchvision's Mask R-CNN and ResNet-50 with its head changes, its point-predictor
MLP, and Medical-SAM-Adapter (adapter blocks in a SAM ViT, its own two-way decoder blocks) at any size.
Each is written from the original's structure and key names, independently of the converter's mapping.
"""

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, TwoWayTransformer
from segment_anything.modeling.common import MLPBlock
from segment_anything.modeling.image_encoder import add_decomposed_rel_pos, window_partition, window_unpartition
from segment_anything.modeling.transformer import Attention as TokenAttention
from torch import nn

from spinefm.models.medsa.backbones import tiny_config


def original_maskrcnn() -> nn.Module:
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    model.roi_heads.box_predictor = torchvision.models.detection.faster_rcnn.FastRCNNPredictor(1024, 2)
    model.roi_heads.mask_predictor = torchvision.models.detection.mask_rcnn.MaskRCNNPredictor(256, 256, 2)
    return model.eval()


def original_classifier(num_classes: int) -> nn.Module:
    model = torchvision.models.resnet50(weights=None)
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model.eval()


class OriginalPointPredictor(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 50)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(50, 2)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))


class Adapter(nn.Module):
    def __init__(self, dim: int, skip_connect: bool = True):
        super().__init__()
        self.skip_connect = skip_connect
        self.act = nn.GELU()
        self.D_fc1 = nn.Linear(dim, int(dim * 0.25))
        self.D_fc2 = nn.Linear(int(dim * 0.25), dim)

    def forward(self, x):
        xs = self.D_fc2(self.act(self.D_fc1(x)))
        return x + xs if self.skip_connect else xs


class BlockAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, size: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rel_h = nn.Parameter(torch.zeros(2 * size - 1, dim // num_heads))
        self.rel_w = nn.Parameter(torch.zeros(2 * size - 1, dim // num_heads))

    def forward(self, x):
        B, H, W, _ = x.shape
        qkv = self.qkv(x).reshape(B, H * W, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, B * self.num_heads, H * W, -1).unbind(0)
        attn = add_decomposed_rel_pos((q * self.scale) @ k.transpose(-2, -1), q, self.rel_h, self.rel_w, (H, W), (H, W))
        x = (attn.softmax(dim=-1) @ v).view(B, self.num_heads, H, W, -1).permute(0, 2, 3, 1, 4).reshape(B, H, W, -1)
        return self.proj(x)


class AdapterBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, window_size: int, grid: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = BlockAttention(dim, num_heads, window_size or grid)
        self.MLP_Adapter = Adapter(dim, skip_connect=False)
        self.Space_Adapter = Adapter(dim)
        self.scale = 0.5
        self.Depth_Adapter = Adapter(dim, skip_connect=False)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, 4 * dim)
        self.window_size = window_size

    def forward(self, x):
        shortcut = x
        if self.window_size > 0:
            H, W = x.shape[1], x.shape[2]
            x, pad_hw = window_partition(x, self.window_size)
        x = self.Space_Adapter(self.attn(self.norm1(x)))
        if self.window_size > 0:
            x = window_unpartition(x, self.window_size, pad_hw, (H, W))
        x = shortcut + x
        xn = self.norm2(x)
        return x + self.mlp(xn) + self.scale * self.MLP_Adapter(xn)


class AdapterEncoder(ImageEncoderViT):
    """SAM's ViT with adapter blocks and a position embedding kept for a 1024 px input."""

    def __init__(self, c: dict):
        super().__init__(
            img_size=c["img_size"],
            patch_size=c["patch_size"],
            embed_dim=c["embed_dim"],
            depth=c["depth"],
            num_heads=c["num_heads"],
            out_chans=c["out_chans"],
            use_rel_pos=True,
            window_size=c["window_size"],
            global_attn_indexes=tuple(c["global_attn_indexes"]),
        )
        grid = c["img_size"] // c["patch_size"]
        self.pos_embed = nn.Parameter(torch.zeros(1, 1024 // c["patch_size"], 1024 // c["patch_size"], c["embed_dim"]))
        self.blocks = nn.ModuleList(
            AdapterBlock(c["embed_dim"], c["num_heads"], 0 if i in c["global_attn_indexes"] else c["window_size"], grid)
            for i in range(c["depth"])
        )

    def forward(self, x):
        x = self.patch_embed(x)
        position = F.interpolate(self.pos_embed.permute(0, 3, 1, 2), size=x.shape[1:3], mode="bicubic")
        x = x + position.permute(0, 2, 3, 1)
        for block in self.blocks:
            x = block(x)
        return self.neck(x.permute(0, 3, 1, 2))


class OriginalMLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.layers = nn.ModuleList([nn.Sequential(nn.Linear(dim, hidden), nn.ReLU())])
        self.fc = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc(self.layers[0](x))


class OriginalTwoWayBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_dim: int, skip_first_layer_pe: bool):
        super().__init__()
        self.self_attn = TokenAttention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = TokenAttention(dim, num_heads, downsample_rate=2)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = OriginalMLP(dim, mlp_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = TokenAttention(dim, num_heads, downsample_rate=2)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries, keys, query_pe, key_pe):
        if not self.skip_first_layer_pe:
            queries = queries + query_pe
        queries = self.norm1(queries + self.self_attn(q=queries, k=queries, v=queries))
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q=q, k=k, v=keys))
        queries = self.norm3(queries + self.mlp(queries))
        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(q=k, k=q, v=queries))
        return queries, keys


class OriginalMedSA(nn.Module):
    """Medical-SAM-Adapter as SpineFM builds it (`tiny`: the sizes of `spinefm`'s tiny backbone; None: ViT-B)."""

    def __init__(self, tiny: dict | None = None):
        super().__init__()
        c = tiny_config(tiny) if tiny is not None else VIT_B
        grid = c["img_size"] // c["patch_size"]
        self.image_encoder = AdapterEncoder(c)
        self.prompt_encoder = PromptEncoder(
            embed_dim=c["out_chans"],
            image_embedding_size=(grid, grid),
            input_image_size=(c["img_size"], c["img_size"]),
            mask_in_chans=c["mask_in_chans"],
        )
        transformer = TwoWayTransformer(
            c["decoder_depth"], c["out_chans"], c["decoder_num_heads"], c["decoder_mlp_dim"]
        )
        transformer.layers = nn.ModuleList(
            OriginalTwoWayBlock(c["out_chans"], c["decoder_num_heads"], c["decoder_mlp_dim"], i == 0)
            for i in range(c["decoder_depth"])
        )
        self.mask_decoder = MaskDecoder(
            transformer_dim=c["out_chans"], transformer=transformer, iou_head_hidden_dim=c["iou_head_hidden_dim"]
        )
        self.eval()

    def load_sam(self, sam: dict) -> None:
        """Start from SAM's weights, as the original loads its SAM checkpoint first."""
        own = self.state_dict()
        for key, value in sam.items():
            key = key.replace("attn.rel_pos_", "attn.rel_")
            if key.startswith("mask_decoder."):
                key = key.replace("mlp.lin1.", "mlp.layers.0.0.").replace("mlp.lin2.", "mlp.fc.")
            if key in own and own[key].shape == value.shape:
                own[key] = value
        self.load_state_dict(own)

    @torch.no_grad()
    def segment(self, image: torch.Tensor) -> torch.Tensor:
        """Low-res logits of one patch (1, 3, S, S) in [0, 1] prompted at its centre, as SpineFM's MSA_predict."""
        point = torch.full((1, 1, 2), image.shape[-1] / 2.0)
        sparse, dense = self.prompt_encoder(points=(point, torch.ones(1, 1)), boxes=None, masks=None)
        masks, _ = self.mask_decoder(
            image_embeddings=self.image_encoder(image),
            image_pe=self.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        return masks


VIT_B = {
    **tiny_config(),
    "img_size": 1024,
    "patch_size": 16,
    "embed_dim": 768,
    "depth": 12,
    "num_heads": 12,
    "out_chans": 256,
    "window_size": 14,
    "global_attn_indexes": [2, 5, 8, 11],
    "decoder_mlp_dim": 2048,
    "decoder_num_heads": 8,
    "iou_head_hidden_dim": 256,
    "mask_in_chans": 16,
}


def trained(module: nn.Module, prefixes: tuple[str, ...], seed: int = 0) -> None:
    """Move the parameters under `prefixes` away from where they started, as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if name.startswith(prefixes):
                parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))


def medsa_file(model: OriginalMedSA) -> dict:
    """What the Med-SA repository saves: the whole model under 'state_dict', beside numpy scalars."""
    return {"epoch": 3, "state_dict": model.state_dict(), "best_tol": np.float64(0.91)}
