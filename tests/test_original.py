"""SpineFM's released weights: each original architecture, saved with random weights under the
original file names, is converted (`spinefm.original`) and loaded by the pipeline; every tensor
arrives unchanged, a forward pass equals the original's on the same input, and each stage can start
training from the converted checkpoint."""

import json
import subprocess
import sys

import pytest
import torch
from segment_anything.modeling import Sam

from helpers.original_layouts import (
    OriginalMedSA,
    OriginalPointPredictor,
    medsa_file,
    original_classifier,
    original_maskrcnn,
    trained,
)
from helpers.train_runs import REPO
from spinefm.checkpoints import load_component
from spinefm.errors import UserError
from spinefm.models.maskrcnn import build_maskrcnn
from spinefm.models.medsa import MedSA
from spinefm.models.medsa.backbones import build_backbone
from spinefm.models.point_predictor import PointPredictor
from spinefm.models.spine_end import SpineEndClassifier
from spinefm.original import layouts
from spinefm.original.__main__ import main
from spinefm.original.convert import convert
from spinefm.pipeline.components.loading import load_components

# A tiny ViT whose token grid differs from the original's 1024 px position embedding (resized), and
# one whose grid matches it (the encoder's weights stay SAM's, as Med-SA trains only its adapters).
RESIZED = {"backbone": "tiny"}
SAM_GRID = {"backbone": "tiny", "tiny": {"img_size": 1024, "patch_size": 128}}


def save_sam(path, base: dict, seed: int = 0) -> dict:
    parts = build_backbone("tiny", tiny={**(base.get("tiny") or {}), "seed": seed})
    state = Sam(parts.image_encoder, parts.prompt_encoder, parts.mask_decoder).state_dict()
    torch.save(state, path)
    return state


def save_originals(folder, base: dict, classes: int = 2, train_encoder: bool = False) -> dict:
    """The four released files of a dataset and the SAM file; returns the original models."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    models = {"maskrcnn": original_maskrcnn(), "classifier": original_classifier(classes)}
    models["point_predictor"] = OriginalPointPredictor().eval()
    sam = save_sam(folder / "sam_vit_b_01ec64.pth", base)
    medsa = OriginalMedSA(base.get("tiny") or {})
    medsa.load_sam(sam)
    trained(medsa, ("image_encoder.blocks.0.Space_Adapter", "image_encoder.blocks.1.MLP_Adapter", "mask_decoder."))
    trained(medsa, ("image_encoder.blocks.0.MLP_Adapter", "image_encoder.blocks.1.Space_Adapter"), seed=1)
    if train_encoder:
        trained(medsa, ("image_encoder.blocks.0.attn.qkv",), seed=2)
    models["medsa"] = medsa
    torch.save(models["maskrcnn"].state_dict(), folder / "mask_rcnn_csxa.pth")
    torch.save(medsa_file(medsa), folder / "MSA_300b_CSXA.pth")
    torch.save(models["point_predictor"].state_dict(), folder / "point_predictor.pth")
    torch.save(models["classifier"].state_dict(), folder / f"resnet50_{classes}_class_224px_csxa.pth")
    return models


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("original")
    models = save_originals(folder / "weights", RESIZED, train_encoder=True)
    manifest = convert(folder / "weights", "csxa", folder / "converted", medsa_base=RESIZED)
    return models, manifest


def test_the_manifest_lists_four_checkpoints_that_the_pipeline_loads(converted):
    _, manifest = converted
    written = json.loads(manifest.read_text())
    assert written["dataset"] == {"name": "csxa", "view": "lateral_cervical", "first_level": "C2", "last_level": "C7"}
    assert sorted(written["components"]) == ["maskrcnn", "medsa", "point_predictor", "spine_end"]
    components = load_components(manifest)
    assert components.detector.score_threshold == 0.6 and components.detector.mask_threshold == 0.9
    assert components.segmenter.patch == {"mode": "fixed", "side_px": 300, "spacing_factor": 3.0}
    assert components.classifier.classes == ["background", "vertebra"] and components.classifier.input_size == 224


def test_medsa_arrives_unchanged_and_segments_as_the_original(converted):
    models, manifest = converted
    original = models["medsa"]
    path = json.loads(manifest.read_text())["components"]["medsa"]["best_checkpoint"]
    model, info = load_component(path)
    # the encoder was trained too (and its position embedding is resized): every group is stored
    assert info["model"]["trainable"] == ["adapters", "mask_decoder", "image_encoder", "iou_head"]
    ours = model.state_dict()
    blocks = model.image_encoder.blocks
    for i, block in enumerate(original.image_encoder.blocks):
        assert torch.equal(blocks[i].attn.adapter.down.weight, block.Space_Adapter.D_fc1.weight)
        assert torch.equal(blocks[i].mlp.adapter.up.bias, block.MLP_Adapter.D_fc2.bias)
        assert torch.equal(blocks[i].attn.attn.rel_pos_h, block.attn.rel_h)
        assert torch.equal(blocks[i].mlp.mlp.lin1.weight, block.mlp.lin1.weight)
    for i, layer in enumerate(original.mask_decoder.transformer.layers):
        assert torch.equal(model.mask_decoder.transformer.layers[i].mlp.lin2.weight, layer.mlp.fc.weight)
    for key, value in original.state_dict().items():
        if key.startswith(("prompt_encoder.", "mask_decoder.iou", "mask_decoder.output")):
            assert torch.equal(ours[key], value), key
    images = torch.rand(2, 3, model.input_size, model.input_size)
    centre = torch.full((2, 2), model.input_size / 2.0)
    with torch.no_grad():
        expected = torch.cat([original.segment(image[None]) for image in images])
        torch.testing.assert_close(model(images, points=centre), expected, atol=1e-5, rtol=1e-4)


def test_a_medsa_over_unchanged_sam_weights_stores_only_what_was_trained(tmp_path):
    save_originals(tmp_path / "weights", SAM_GRID)
    manifest = convert(tmp_path / "weights", "csxa", tmp_path / "out", medsa_base=SAM_GRID)
    path = json.loads(manifest.read_text())["components"]["medsa"]["best_checkpoint"]
    saved = torch.load(path, weights_only=True)
    assert saved["spinefm"]["model"]["trainable"] == ["adapters", "mask_decoder", "iou_head"]
    assert not [k for k in saved["state_dict"] if "image_encoder." in k and ".adapter." not in k]
    save_sam(tmp_path / "other_sam.pth", SAM_GRID, seed=1)
    with pytest.raises(UserError, match=r"MSA_300b_CSXA\.pth was not trained over the SAM weights .*other_sam"):
        convert(
            tmp_path / "weights", "csxa", tmp_path / "other", {"sam": tmp_path / "other_sam.pth"}, medsa_base=SAM_GRID
        )


def test_classifier_detector_and_point_predictor_give_the_original_outputs(converted):
    models, manifest = converted
    paths = {k: v["best_checkpoint"] for k, v in json.loads(manifest.read_text())["components"].items()}

    classifier, _ = load_component(paths["spine_end"])
    grey = torch.rand(2, 1, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(classifier(grey), models["classifier"](grey.expand(-1, 3, -1, -1)))
    assert torch.equal(classifier.net.layer4[2].conv3.weight, models["classifier"].layer4[2].conv3.weight)

    predictor, _ = load_component(paths["point_predictor"])
    window = torch.tensor([[[100.0, 50.0], [104.0, 90.0], [107.0, 131.0]]])
    size = torch.tensor([[400.0, 800.0]])
    with torch.no_grad():
        expected = models["point_predictor"]((window / size[:, None]).view(-1, 6)) * size
        torch.testing.assert_close(predictor(window, size), expected)

    detector, _ = load_component(paths["maskrcnn"])
    original = models["maskrcnn"]
    assert all(torch.equal(detector.state_dict()[k], v) for k, v in original.state_dict().items())
    for model in (detector, original):  # a small input keeps the two forwards cheap; the same for both
        model.transform.min_size, model.transform.max_size = (160,), 200
    image = [torch.rand(3, 120, 90)]
    with torch.no_grad():
        ours, theirs = detector(image)[0], original(image)[0]
    assert set(ours) == set(theirs)
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key])


def test_bad_original_files_are_named_in_one_error_line(tmp_path, capsys):
    folder = tmp_path / "weights"
    save_originals(folder, SAM_GRID)
    out = tmp_path / "out"
    assert main([str(tmp_path / "absent"), "--dataset", "csxa", "--out", str(out)]) == 2
    assert "weights folder" in capsys.readouterr().err
    torch.save({"fc1.weight": torch.zeros(50, 6)}, folder / "point_predictor.pth")
    assert main([str(folder), "--dataset", "csxa", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "point_predictor.pth does not fit: missing 3 keys (fc1.bias, fc2.weight, fc2.bias)" in err

    def refused(dataset="csxa", **given):
        with pytest.raises(UserError) as raised:
            convert(folder, dataset, out, given, medsa_base=SAM_GRID)
        return str(raised.value)

    torch.save(OriginalPointPredictor().state_dict(), folder / "point_predictor.pth")
    assert "classifies 2 classes, but SpineFM's nhanes classifier has 4" in refused("nhanes")
    assert refused(sam=folder / "point_predictor.pth").startswith("SAM weights: ")
    (folder / "mask_rcnn_csxa.pth").write_bytes(b"not a checkpoint")
    assert "mask_rcnn_csxa.pth could not be read as a PyTorch file" in refused()
    (folder / "mask_rcnn_other.pth").write_bytes(b"")
    assert "2 files (mask_rcnn_csxa.pth, mask_rcnn_other.pth) match" in refused("nhanes")
    assert not (out / "manifest.json").exists()


def test_stages_start_training_from_converted_checkpoints(converted):
    _, manifest = converted
    paths = {k: v["best_checkpoint"] for k, v in json.loads(manifest.read_text())["components"].items()}
    loaded = {name: load_component(path)[0].state_dict() for name, path in paths.items()}

    def same(model, name):
        return all(torch.equal(model.state_dict()[k], v) for k, v in loaded[name].items())

    base = torch.load(paths["medsa"], weights_only=True)["spinefm"]["model"]
    medsa = MedSA(**{**base, "trainable": ["adapters"], "init_checkpoint": paths["medsa"]})
    assert same(medsa, "medsa")
    rebuilt = MedSA(**medsa.base_identity())  # what a checkpoint of the new training rebuilds its frozen part from
    rebuilt.load_trainable_state_dict(medsa.trainable_state_dict())
    assert same(rebuilt, "medsa")
    assert same(PointPredictor("absolute", residual=False, init_checkpoint=paths["point_predictor"]), "point_predictor")
    classifier = SpineEndClassifier("resnet50", num_classes=2, init_checkpoint=paths["spine_end"], mean=0.0, std=1.0)
    assert same(classifier, "spine_end")
    assert same(build_maskrcnn("resnet50_fpn", init_checkpoint=paths["maskrcnn"]), "maskrcnn")


def test_evaluate_runs_on_converted_originals(converted, tmp_path):
    _, manifest = converted
    command = [
        sys.executable,
        "evaluate.py",
        f"hydra.run.dir={tmp_path}",
        f"pipeline.checkpoints={manifest}",
        "dataset=synthetic",
        "dataset.reader.num_images={train:0,val:0,test:2}",
        "dataset.reader.phantom.image_size=192",
        # the original ResNet-50 detector on small films at their own size, the encoder in torch: seconds
        "+pipeline.components.maskrcnn={image_size:192,model_overrides:{min_size:192,max_size:192}}",
        "pipeline.components.medsa.cpu_runtime=torch",
        "progress_bar=false",
        "num_workers=0",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads((tmp_path / "summary.json").read_text())["run"]
    assert run["films"] == 2 and not run["failed"] and run["checkpoints"] == str(manifest)
    assert run["components"]["medsa"] == str(manifest.parent / "medsa.ckpt")


@pytest.mark.slow
def test_a_full_size_medsa_file_maps_onto_sam_vit_b_key_for_key():
    original = OriginalMedSA()  # ViT-B, as SpineFM's released Med-SA
    ours = MedSA("sam_vit_b", allow_random=True, normalise_input=False, decoder_blocks="residual_self_attention")
    own = ours.state_dict()
    mapped = layouts.medsa_state(original.state_dict(), tuple(own["image_encoder.pos_embed"].shape))
    assert sorted(mapped) == sorted(own)
    assert all(mapped[key].shape == own[key].shape for key in own)
