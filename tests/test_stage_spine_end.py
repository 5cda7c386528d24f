"""Spine-end stage: classes from end levels, background ring sampling, exact patches, balanced
sampling, train.py runs, a tiny model learns, and its checkpoint reloads with the same logits."""

import csv
from collections import Counter

import numpy as np
import pytest
import torch
import torchvision
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from datamodules.spine_end import (
    SpineEndDataModule,
    background_ring,
    beyond_the_ends,
    class_frequencies,
    sample_background,
    vertebra_size,
)
from helpers.train_runs import REPO, metrics, run_dirs, run_train
from spinefm.checkpoints import load_component
from spinefm.data.classes import class_names, level_classes, vertebra_class
from spinefm.data.patches import median_spacing, patch_side
from spinefm.data.record import ImageRecord, Vertebra
from spinefm.models.spine_end import SpineEndClassifier
from spinefm.synthetic import PhantomConfig, generate_phantom
from spinefm.training.spine_end import SpineEndModule

FOUR = ["background", "vertebra", "top_end", "bottom_end"]
TINY = ["stage=spine_end", "stage.module.model.arch=tiny", "dataset.reader.phantom.image_size=256"]


def dataset_config(name: str) -> dict:
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose(config_name="check", overrides=[f"dataset={name}"])
    return OmegaConf.to_container(cfg.dataset, resolve=False)


def square(level: str, cx: float, cy: float, half: float) -> Vertebra:
    x0, x1, y0, y1 = cx - half, cx + half, cy - half, cy + half
    return Vertebra(level, polygon=[[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


@pytest.mark.parametrize(
    "name, classes", [("aasce", FOUR), ("synthetic", FOUR), ("nhanes", FOUR), ("csxa", FOUR[:2]), ("coco", FOUR[:2])]
)
def test_classes_follow_the_dataset_end_levels(name, classes):
    assert class_names(dataset_config(name)["end_levels"]) == classes


def test_vertebra_classes_on_synthetic_films():
    end_levels = dataset_config("synthetic")["end_levels"]
    config = PhantomConfig(image_size=256, cutoff_probability=0.0, t1_probability=1.0)
    expected = {
        "lateral_cervical": {"C2": "top_end", "C3": "vertebra", "C7": "vertebra", "T1": "vertebra"},
        "lateral_lumbar": {"T12": "vertebra", "L5": "vertebra", "S1": "bottom_end"},
        "ap_thoracolumbar": {"T1": "top_end", "T12": "vertebra", "L5": "bottom_end"},
    }
    for view, levels in expected.items():
        record = generate_phantom(3, config, view=view)
        got = {v.level: vertebra_class(v.level, record.view, end_levels) for v in record.vertebrae}
        assert levels.items() <= got.items(), view
    default_only = {"default": {"top": "C2", "bottom": None}}
    assert vertebra_class("C2", None, default_only) == "top_end"
    assert class_names(default_only) == FOUR[:3]


def test_background_centres_lie_in_the_ring_with_x_as_column():
    # A short column near the left edge of a tall image: swapped (row, col) would land far off it.
    vertebrae = [square(level, 25.0, cy, 6.0) for level, cy in zip(("L1", "L2", "L3", "L4"), (60, 76, 92, 108))]
    record = ImageRecord("asym", vertebrae, image=np.zeros((220, 130), np.uint8), view="ap_thoracolumbar")
    inner, outer = 0.25, 1.0
    centres = sample_background(record, 300, inner, outer, np.random.default_rng(0))
    assert len(centres) == 300
    union = np.zeros((220, 130), bool)
    for v in vertebrae:
        union |= v.to_mask(220, 130)
    rows, cols = np.nonzero(union)
    size = vertebra_size(record)
    for x, y in centres:
        assert not union[int(y), int(x)]
        distance = np.sqrt((cols - x) ** 2 + (rows - y) ** 2).min()
        assert inner * size - 1e-3 < distance <= outer * size + 1e-3
    assert background_ring(record, inner, outer)[centres[:, 1].astype(int), centres[:, 0].astype(int)].all()


def test_points_beyond_the_end_landmarks_continue_the_spine_with_their_levels():
    """T1..T4 of an AP film: T1 is the top landmark, so C7 lies 1 step above it and C6 2 steps (half
    a step: no level); T4 is no landmark, so nothing below. A lumbar film has no top landmark."""
    vertebrae = [square(level, 40.0 + 2 * i, 60.0 + 16 * i, 6.0) for i, level in enumerate(("T1", "T2", "T3", "T4"))]
    record = ImageRecord("ap", vertebrae, image=np.zeros((220, 130), np.uint8), view="ap_thoracolumbar")
    end_levels = {"ap_thoracolumbar": {"top": "T1", "bottom": "L5"}, "lateral_lumbar": {"top": None, "bottom": "S1"}}
    points, levels = zip(*beyond_the_ends(record, end_levels, [1.0, 2.0, 0.5]))
    assert np.allclose(points, [[38.0, 44.0], [36.0, 28.0], [39.0, 52.0]])
    assert levels == ("C7", "C6", None)
    record.view = "lateral_lumbar"
    assert beyond_the_ends(record, end_levels, [1.0, 2.0]) == []


def test_patches_are_exact_at_the_image_borders():
    height, width = 40, 30
    image = np.random.default_rng(1).integers(1, 256, (height, width), dtype=np.uint8)
    top, bottom = square("L1", 3.0, 3.0, 2.0), square("L2", 27.0, 37.0, 2.0)  # centroids (3, 3) and (27, 37)
    record = ImageRecord("corners", [top, bottom], image=image, view="ap_thoracolumbar")
    module = SpineEndDataModule(
        {"name": "test", "end_levels": {}}, input_size=9, patch={"mode": "fixed", "side_px": 9}, negatives_per_image=0
    )
    patches, labels = module.record_samples(record, train=False, rng=np.random.default_rng(0))
    assert labels == [1, 1]
    expected_top = np.zeros((9, 9), np.uint8)
    expected_top[1:, 1:] = image[:8, :8]  # patch spans x, y = -1..7
    expected_bottom = np.zeros((9, 9), np.uint8)
    expected_bottom[:7, :7] = image[33:40, 23:30]  # patch spans x = 23..31, y = 33..41
    np.testing.assert_array_equal(patches[0], expected_top)
    np.testing.assert_array_equal(patches[1], expected_bottom)
    assert patch_side({"mode": "spacing", "spacing_factor": 1.5}, median_spacing(record)) == round(
        1.5 * np.hypot(24.0, 34.0)
    )
    with pytest.raises(ValueError, match="patch.mode"):
        patch_side({"mode": "relative"}, 10.0)


def test_a_film_cut_for_training_ends_past_its_first_and_last_vertebra():
    """edge_cut, training only: rows past the cut (half a spacing above T1, below T4) read zeros as
    past a film's edge, C7 one step above T1 now lies past it and is dropped, the record keeps its
    pixels; without training every sample is there."""
    image = np.random.default_rng(2).integers(1, 256, (220, 130), dtype=np.uint8)
    vertebrae = [square(level, 40.0 + 2 * i, 60.0 + 16 * i, 6.0) for i, level in enumerate(("T1", "T2", "T3", "T4"))]
    record = ImageRecord("ap", vertebrae, image=image.copy(), view="ap_thoracolumbar")
    dataset = {"name": "test", "end_levels": {"ap_thoracolumbar": {"top": "T1", "bottom": "L5"}}}
    module = SpineEndDataModule(
        {**dataset, "first_level": "T1", "last_level": "L5"},
        targets="levels",
        input_size=33,
        patch={"mode": "fixed", "side_px": 33},
        positive_jitter=0.0,
        negatives_per_image=0,
        beyond_ends=[1.0],
        edge_cut={"p": 1.0, "top": [0.5, 0.5], "bottom": [0.5, 0.5]},
    )
    patches, labels = module.record_samples(record, train=True, rng=np.random.default_rng(0))
    assert [module.classes[i] for i in labels] == ["T1", "T2", "T3", "T4"]
    top, bottom = round(60 - 0.5 * np.hypot(2, 16)), round(108 + 0.5 * np.hypot(2, 16))  # 52, 116
    np.testing.assert_array_equal(patches[0][: top - 44], 0)  # T1's patch spans rows 44..76
    np.testing.assert_array_equal(patches[0][top - 44 :], image[top:77, 24:57])
    np.testing.assert_array_equal(patches[3][bottom - 92 :], 0)  # T4's spans rows 92..124
    np.testing.assert_array_equal(patches[3][: bottom - 92], image[92:bottom, 30:63])
    np.testing.assert_array_equal(record.image, image)
    _, labels = module.record_samples(record, train=False, rng=np.random.default_rng(0))
    assert [module.classes[i] for i in labels] == ["T1", "T2", "T3", "T4", "C7"]


@pytest.fixture(scope="module")
def synthetic_datamodule():
    dataset = dataset_config("synthetic")
    dataset["reader"].update(num_images={"train": 16, "val": 4, "test": 0}, phantom={"image_size": 256})
    module = SpineEndDataModule(dataset, input_size=32, negatives_per_image=8, batch_size=64, augment={"hflip": 0.5})
    module.setup("fit")
    return module


@pytest.mark.parametrize("balance", [1.0, 0.5])
def test_balanced_sampler_draws_rare_classes_more_often(synthetic_datamodule, balance):
    """balance 1: every class about equally often; 0.5: in proportion to the square root of its count.
    The frequencies drawn are the class prior the checkpoint keeps."""
    natural = np.bincount(synthetic_datamodule.datasets["train"].labels, minlength=4)
    assert natural[2] < natural[1] / 5 and natural[3] < natural[1] / 5  # ends are rare
    synthetic_datamodule.balance = balance
    expected = np.sqrt(natural) / np.sqrt(natural).sum() if balance == 0.5 else np.full(4, 0.25)
    assert np.allclose(class_frequencies(synthetic_datamodule.datasets["train"].labels, 4, balance), expected)
    counts, loader = Counter(), synthetic_datamodule.train_dataloader()
    for _ in range(4):  # epochs: the sampler draws afresh each time
        for batch in loader:
            counts.update(batch["label"].tolist())
    assert sum(counts.values()) == 4 * natural.sum()
    drawn = sum(counts.values()) * expected
    assert all(0.75 * drawn[c] < counts[c] < 1.25 * drawn[c] for c in range(4)), counts
    batch = next(iter(synthetic_datamodule.val_dataloader()))
    assert batch["image"].shape[1:] == (1, 32, 32) and 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0


def test_module_derives_classes_and_stores_them(tmp_path):
    torch.save(SpineEndClassifier("tiny", num_classes=4).state_dict(), tmp_path / "init.pth")
    adam = {"_target_": "torch.optim.Adam", "lr": 1e-3}
    model = {"arch": "tiny", "init_checkpoint": str(tmp_path / "init.pth")}
    module = SpineEndModule(model=model, optimizer=adam, inference={"end_levels": {}, "input_size": 32})
    assert module.model(torch.rand(2, 1, 32, 32)).shape == (2, 2)
    metadata = module.checkpoint_metadata()
    assert metadata["model"]["num_classes"] == 2 and metadata["model"]["init_checkpoint"] is None
    assert module.hparams.model["init_checkpoint"] == model["init_checkpoint"]
    assert metadata["inference"]["classes"] == ["background", "vertebra"] and metadata["inference"]["input_size"] == 32
    with pytest.raises(ValueError, match="class_weights"):
        SpineEndModule(model={"arch": "tiny"}, optimizer=adam, inference={"end_levels": {}}, class_weights=[1, 2, 3])


@pytest.mark.parametrize("arch", ["tiny", "resnet18", "resnet34", "resnet50"])
def test_classifier_outputs_logits(arch):
    model = SpineEndClassifier(arch, num_classes=3).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 64, 64)).shape == (2, 3)


def test_init_checkpoint_folds_rgb_skips_head_and_names_mismatches(tmp_path):
    imagenet_like = torchvision.models.resnet18(weights=None)  # 3 channels, 1000 classes
    torch.save(imagenet_like.state_dict(), tmp_path / "resnet18.pth")
    model = SpineEndClassifier("resnet18", num_classes=4, init_checkpoint=str(tmp_path / "resnet18.pth"))
    torch.testing.assert_close(model.net.conv1.weight, imagenet_like.conv1.weight.sum(dim=1, keepdim=True))
    torch.testing.assert_close(model.net.layer4[1].conv2.weight, imagenet_like.layer4[1].conv2.weight)
    assert model.net.fc.out_features == 4
    torch.save(SpineEndClassifier("tiny", num_classes=2).state_dict(), tmp_path / "tiny.pth")
    with pytest.raises(ValueError, match="tiny.pth.*missing.*conv1"):
        SpineEndClassifier("resnet18", init_checkpoint=str(tmp_path / "tiny.pth"))
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        SpineEndClassifier("tiny", init_checkpoint=str(tmp_path / "absent.pth"))


def test_tiny_model_learns_and_its_checkpoint_reloads(tmp_path, one_thread):
    overrides = ["stage.data.input_size=64", "dataset.reader.num_images={train:64,val:16,test:0}", "stage.max_epochs=6"]
    run_train(tmp_path, *TINY, *overrides)
    (run,) = run_dirs(tmp_path, "train_spine_end")
    result = metrics(run)
    assert result["best_value"] > 0.6  # chance: 0.25
    assert result["metrics"]["val/accuracy_background"] > 0.8
    # every epoch's confusion matrix in the run folder (a row per true class), the last one in the log
    rows = list(csv.DictReader((run / "confusion_matrices.csv").open()))
    assert [r["epoch"] for r in rows] == [str(e) for e in range(6) for _ in FOUR] and rows[0]["true"] == FOUR[0]
    assert (run / "train.log").read_text().count("confusion matrix") == 1

    model, info = load_component(result["best_checkpoint"])
    inference = info["inference"]
    assert inference["classes"] == FOUR and inference["input_size"] == 64
    assert inference["patch"]["mode"] == "spacing"
    assert set(inference["end_levels"]) == {"lateral_cervical", "lateral_lumbar", "ap_thoracolumbar"}
    # the decoder's count prior: only the AP view has both ends, and a whole phantom holds all 17 of T1..L5
    assert list(inference["level_counts"]) == ["ap_thoracolumbar"] and list(
        inference["level_counts"]["ap_thoracolumbar"]
    ) == [17]
    assert len(inference["class_prior"]) == 4 and sum(inference["class_prior"]) == pytest.approx(1.0)

    checkpoint = torch.load(result["best_checkpoint"], map_location="cpu", weights_only=True)
    lightning_module = SpineEndModule(**checkpoint["hyper_parameters"])
    lightning_module.load_state_dict(checkpoint["state_dict"])
    dataset = dataset_config("synthetic")
    dataset["reader"].update(num_images={"train": 0, "val": 16, "test": 0}, phantom={"image_size": 256})
    val = SpineEndDataModule(dataset, input_size=64, patch=inference["patch"])
    val.datasets["val"] = val.build_dataset(val.load_records("val"), train=False)
    images = torch.stack([val.datasets["val"][i]["image"] for i in range(len(val.datasets["val"]))])
    labels = torch.as_tensor(val.datasets["val"].labels)
    with torch.no_grad():
        logits = model(images)
        torch.testing.assert_close(logits, lightning_module.eval().model(images))
    recall = [(logits.argmax(1)[labels == c] == c).float().mean() for c in range(4)]
    assert float(torch.stack(recall).mean()) == pytest.approx(result["best_value"], abs=1e-5)


def test_a_tiny_level_classifier_beats_chance_on_synthetic_films(tmp_path, one_thread):
    """Level targets: a class per level (C1..S1 for the synthetic views) and background; a tiny net
    names most vertebrae within one level, and its checkpoint carries the level classes."""
    overrides = ["stage.data.input_size=64", "dataset.reader.num_images={train:48,val:12,test:0}", "stage.max_epochs=5"]
    run_train(tmp_path, *TINY, *overrides, "stage.module.targets=levels")
    (run,) = run_dirs(tmp_path, "train_spine_end")
    result = metrics(run)
    classes = level_classes("C2", "S1", dataset_config("synthetic")["end_levels"])
    assert result["metrics"]["val/level_within_one"] > 0.5  # chance: about 3 in 25
    assert result["best_value"] > 3 / len(classes)
    _, info = load_component(result["best_checkpoint"])
    assert info["inference"]["classes"] == classes
