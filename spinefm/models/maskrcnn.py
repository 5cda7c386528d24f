"""Mask R-CNN on whole films: rough vertebra instances whose centroids start the inductive loop."""

from __future__ import annotations

import logging
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN, mobilenet_backbone, resnet_fpn_backbone
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool
from torchvision.ops.misc import Conv2dNormActivation

from spinefm.data.intensity import to_unit_range
from spinefm.data.levels import level_range
from spinefm.models.pretrained import state_dict_in, weights_file

log = logging.getLogger(__name__)

BACKBONES = ("resnet50_fpn", "resnet34_fpn", "resnet18_fpn", "mobilenet_v3_fpn", "tiny")
NORM_LAYERS = {"batch": nn.BatchNorm2d, "frozen": FrozenBatchNorm2d}
CLASS_MODES = ("single", "per_level")
# Parameters whose shape follows num_classes: skipped (not an error) when an init checkpoint differs.
CLASS_HEADS = ("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits.")
TINY_CHANNELS = (16, 32, 64)


def build_maskrcnn(
    backbone: str = "resnet50_fpn",
    num_classes: int = 2,
    min_size: int = 800,
    max_size: int = 1333,
    trainable_backbone_layers: int = 5,
    norm_layer: str = "batch",
    returned_layers: list[int] | None = None,
    fpn_channels: int = 256,
    anchor_sizes: list | None = None,
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0),
    box_representation_size: int = 1024,
    mask_head_channels: tuple[int, ...] = (256, 256, 256, 256),
    mask_predictor_channels: int = 256,
    box_detections_per_img: int = 100,
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406),
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225),
    tiny: dict | None = None,
    init_checkpoint: str | None = None,
    **maskrcnn_kwargs,
) -> MaskRCNN:
    """A torchvision MaskRCNN; no weights are ever downloaded (weights=None everywhere).

    backbone: resnet50_fpn (SpineFM's; its parameters match torchvision's maskrcnn_resnet50_fpn,
    so COCO weights load as `init_checkpoint`), resnet34_fpn / resnet18_fpn / mobilenet_v3_fpn
    (lighter, for CPUs), tiny (a few convolutions, `tiny` = {channels: [...]}; for tests).
    norm_layer: batch (trained BatchNorm, for random init) | frozen (torchvision's choice with
    pretrained weights). trainable_backbone_layers: resnets 0..5, mobilenet 0..6; tiny trains all.
    returned_layers: backbone stages fed to the FPN (null: torchvision's default); fpn_channels:
    the FPN's width, which the RPN and the RoI heads inherit (fewer: much cheaper on a CPU).
    anchor_sizes: per feature map, a size or a list of sizes (null: the backbone's default).
    The defaults of the head sizes are torchvision's. Images are 3-channel floats in [0, 1]
    (`grey_to_input`); the model's transform resizes them by min_size / max_size.
    maskrcnn_kwargs go to torchvision's MaskRCNN (rpn_* and box_* settings).
    """
    features = _backbone(
        backbone, trainable_backbone_layers, _norm_layer(norm_layer), returned_layers, fpn_channels, tiny
    )
    channels = features.out_channels
    mask_head_channels = tuple(mask_head_channels)
    model = MaskRCNN(
        features,
        num_classes=None,
        min_size=min_size,
        max_size=max_size,
        image_mean=list(image_mean),
        image_std=list(image_std),
        rpn_anchor_generator=_anchor_generator(backbone, features, anchor_sizes, aspect_ratios),
        box_head=TwoMLPHead(channels * 7 * 7, box_representation_size),  # 7: the box RoI pool's output size
        box_predictor=FastRCNNPredictor(box_representation_size, num_classes),
        box_detections_per_img=box_detections_per_img,
        mask_head=MaskRCNNHeads(channels, mask_head_channels, 1),
        mask_predictor=MaskRCNNPredictor(mask_head_channels[-1], mask_predictor_channels, num_classes),
        **maskrcnn_kwargs,
    )
    if init_checkpoint:
        load_init_checkpoint(model, weights_file(init_checkpoint), backbone)
    return model


def grey_to_input(image: np.ndarray) -> torch.Tensor:
    """A 2-D radiograph (any bit depth) as the model's input: float (3, H, W) in [0, 1]."""
    return torch.from_numpy(to_unit_range(np.asarray(image))).unsqueeze(0).repeat(3, 1, 1)


def class_levels(class_mode: str, first_level: str | None, last_level: str | None) -> list[str] | None:
    """The level each label stands for (label = index + 1) in `per_level` mode; None in `single`."""
    if class_mode not in CLASS_MODES:
        raise ValueError(f"class_mode must be one of {CLASS_MODES}, not {class_mode!r}")
    if class_mode == "single":
        return None
    if not first_level or not last_level:
        raise ValueError("class_mode per_level needs the dataset's first_level and last_level")
    return level_range(first_level, last_level, include_optional=True)


def load_init_checkpoint(model: MaskRCNN, path, backbone: str) -> None:
    """Load weights from a user-named file (weights_only); class-dependent heads of another shape
    are skipped, anything else that does not fit raises a ValueError."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"init_checkpoint {path} not found; name an existing .pth file or set init_checkpoint: null"
        )
    try:
        loaded = state_dict_in(torch.load(path, map_location="cpu", weights_only=True))
    except (pickle.UnpicklingError, RuntimeError, ValueError) as error:
        raise ValueError(
            f"init_checkpoint {path} is not a file of plain weights ({error}); "
            "save one with torch.save(model.state_dict(), path)"
        ) from error
    own = model.state_dict()
    optional = "num_batches_tracked"  # BatchNorm has it, FrozenBatchNorm2d does not
    missing = [k for k in own if k not in loaded and not k.endswith(optional)]
    unexpected = [k for k in loaded if k not in own and not k.endswith(optional)]
    reshaped = [k for k in own if k in loaded and loaded[k].shape != own[k].shape]
    skipped = [k for k in reshaped if k.startswith(CLASS_HEADS)]
    wrong = [k for k in reshaped if k not in skipped]
    if missing or unexpected or wrong:
        raise ValueError(
            f"init_checkpoint {path} does not fit a Mask R-CNN with backbone {backbone!r}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, other shape {wrong[:5]}; "
            "name weights of a torchvision Mask R-CNN with the same backbone and head sizes "
            "(COCO maskrcnn_resnet50_fpn weights fit resnet50_fpn with default heads), or set init_checkpoint: null"
        )
    if skipped:
        log.info("init_checkpoint %s: class heads of another shape keep their fresh initialisation: %s", path, skipped)
    model.load_state_dict({k: v for k, v in loaded.items() if k in own and k not in skipped}, strict=False)


def _norm_layer(name: str):
    if name not in NORM_LAYERS:
        raise ValueError(f"norm_layer must be one of {sorted(NORM_LAYERS)}, not {name!r}")
    return NORM_LAYERS[name]


def _backbone(
    name: str, trainable_layers: int, norm_layer, returned_layers, fpn_channels: int, tiny: dict | None
) -> BackboneWithFPN:
    returned_layers = list(returned_layers) if returned_layers else None
    if name == "tiny":
        return _tiny_backbone(norm_layer, returned_layers, fpn_channels, **{"channels": TINY_CHANNELS, **(tiny or {})})
    if name.startswith("resnet") and name in BACKBONES:
        features = resnet_fpn_backbone(
            backbone_name=name.removesuffix("_fpn"),
            weights=None,
            norm_layer=norm_layer,
            trainable_layers=trainable_layers,
            returned_layers=returned_layers,
        )
    elif name == "mobilenet_v3_fpn":
        features = mobilenet_backbone(
            backbone_name="mobilenet_v3_large",
            weights=None,
            fpn=True,
            norm_layer=norm_layer,
            trainable_layers=trainable_layers,
            returned_layers=returned_layers,
        )
    else:
        raise ValueError(f"unknown backbone {name!r}; expected one of {BACKBONES}")
    if fpn_channels != features.out_channels:  # torchvision's extractors fix the FPN at 256 channels
        in_channels = [block[0].in_channels for block in features.fpn.inner_blocks]
        features.fpn = FeaturePyramidNetwork(in_channels, fpn_channels, extra_blocks=LastLevelMaxPool())
        features.out_channels = fpn_channels
    return features


def _tiny_backbone(norm_layer, returned_layers, fpn_channels: int, channels) -> BackboneWithFPN:
    """A stride-2 stem and one stride-2 block per entry of `channels`, under an FPN."""
    stages, width = OrderedDict(), channels[0]
    stages["stem"] = Conv2dNormActivation(3, width, 3, stride=2, norm_layer=norm_layer)
    for i, out in enumerate(channels, start=1):
        stages[f"layer{i}"] = nn.Sequential(
            Conv2dNormActivation(width, out, 3, stride=2, norm_layer=norm_layer),
            Conv2dNormActivation(out, out, 3, norm_layer=norm_layer),
        )
        width = out
    returned_layers = returned_layers or list(range(1, len(channels) + 1))
    return BackboneWithFPN(
        nn.Sequential(stages),
        return_layers={f"layer{k}": str(v) for v, k in enumerate(returned_layers)},
        in_channels_list=[channels[k - 1] for k in returned_layers],
        out_channels=fpn_channels,
    )


def _anchor_generator(backbone: str, features: BackboneWithFPN, anchor_sizes, aspect_ratios) -> AnchorGenerator:
    num_maps = len(features.body.return_layers) + 1  # the FPN adds a max-pooled level
    if anchor_sizes is None:
        if backbone == "mobilenet_v3_fpn":  # torchvision's choice for its mobilenet detectors
            anchor_sizes = [[32, 64, 128, 256, 512]] * num_maps
        else:
            first = 16 if backbone == "tiny" else 32
            anchor_sizes = [first * 2**i for i in range(num_maps)]
    sizes = tuple(tuple(s) if isinstance(s, (list, tuple)) else (s,) for s in anchor_sizes)
    if len(sizes) != num_maps:
        raise ValueError(
            f"anchor_sizes has {len(sizes)} entries but backbone {backbone!r} gives {num_maps} feature maps; "
            "give one per map"
        )
    if len({len(s) for s in sizes}) != 1:
        raise ValueError("every feature map needs the same number of anchor sizes (the RPN head is shared)")
    return AnchorGenerator(sizes, (tuple(aspect_ratios),) * num_maps)
