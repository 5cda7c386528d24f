"""Mask R-CNN network: backbones build and detect, torchvision's layout, light options, init checkpoints."""

import logging

import pytest
import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn

from helpers.maskrcnn_tiny import TINY
from spinefm.models.maskrcnn import BACKBONES, build_maskrcnn


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_builds_from_random_weights_and_detects(backbone):
    torch.manual_seed(0)
    model = build_maskrcnn(backbone, min_size=64, max_size=64).eval()
    with torch.no_grad():
        (output,) = model([torch.rand(3, 64, 40)])
    assert set(output) == {"boxes", "labels", "scores", "masks"}
    assert output["masks"].shape[1:] == (1, 64, 40)


def test_resnet50_fpn_has_torchvisions_parameters_so_coco_weights_fit():
    ours = build_maskrcnn("resnet50_fpn", num_classes=91).state_dict()
    theirs = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


def test_light_options_shrink_the_model():
    full = sum(p.numel() for p in build_maskrcnn("resnet18_fpn").parameters())
    light = build_maskrcnn("resnet18_fpn", fpn_channels=128, mask_head_channels=[128, 128], box_representation_size=512)
    assert sum(p.numel() for p in light.parameters()) < 0.7 * full
    assert light.backbone.out_channels == 128


def test_init_checkpoint_round_trip_skips_only_class_heads(tmp_path, caplog):
    torch.manual_seed(0)
    source = build_maskrcnn(**TINY, num_classes=2)
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    same = build_maskrcnn(**TINY, num_classes=2, init_checkpoint=str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(same.state_dict()[key], value), key
    with caplog.at_level(logging.INFO, logger="spinefm.models.maskrcnn"):
        more = build_maskrcnn(**TINY, num_classes=5, init_checkpoint=str(path))
    assert "roi_heads.box_predictor.cls_score.weight" in caplog.text
    loaded = more.state_dict()
    assert loaded["roi_heads.box_predictor.cls_score.weight"].shape[0] == 5
    assert torch.equal(
        loaded["backbone.body.layer1.0.0.weight"], source.state_dict()["backbone.body.layer1.0.0.weight"]
    )
    assert torch.equal(loaded["roi_heads.mask_head.0.0.weight"], source.state_dict()["roi_heads.mask_head.0.0.weight"])


def test_init_checkpoint_from_a_lightning_file(tmp_path):
    source = build_maskrcnn(**TINY)
    path = tmp_path / "stage.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in source.state_dict().items()}}, path)
    loaded = build_maskrcnn(**TINY, init_checkpoint=str(path))
    assert torch.equal(loaded.state_dict()["rpn.head.conv.0.0.weight"], source.state_dict()["rpn.head.conv.0.0.weight"])


def test_init_checkpoint_of_another_backbone_is_refused(tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save(build_maskrcnn(**TINY).state_dict(), path)
    with pytest.raises(
        ValueError, match=r"does not fit a Mask R-CNN with backbone 'resnet18_fpn'.*init_checkpoint: null"
    ):
        build_maskrcnn("resnet18_fpn", init_checkpoint=str(path))
    with pytest.raises(ValueError, match=r"other shape \['backbone"):
        build_maskrcnn(**{**TINY, "tiny": {"channels": [8, 16, 32]}}, init_checkpoint=str(path))
    pickled = tmp_path / "pickled.pth"
    torch.save(build_maskrcnn(**TINY), pickled)
    with pytest.raises(ValueError, match="not a file of plain weights"):
        build_maskrcnn(**TINY, init_checkpoint=str(pickled))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        build_maskrcnn(**TINY, init_checkpoint=str(tmp_path / "missing.pth"))


def test_anchor_sizes_must_match_the_feature_maps():
    with pytest.raises(ValueError, match="one per map"):
        build_maskrcnn(**TINY, anchor_sizes=[16, 32])
