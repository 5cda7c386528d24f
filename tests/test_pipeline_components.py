"""The adapters: the same patches as training, exact maps back to image pixels, and the loop end to
end on tiny trained models (one `train.py experiment=train_all_tiny debug=limit` run per module)."""

import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch

from datamodules.medsa import VertebraPatchDataset, cut_context
from spinefm.data.intensity import to_uint8
from spinefm.data.masks import crop_iou
from spinefm.data.patches import median_spacing, patch_side
from spinefm.errors import UserError
from spinefm.evaluation.walk import segmented_patches
from spinefm.models.medsa import MedSA
from spinefm.pipeline import STOP_REASONS, InductiveLoop, LoopConfig
from spinefm.pipeline.components.adapters import MedSAAdapter, SpineEndAdapter, to_original_grid
from spinefm.pipeline.components.loading import load_components, load_loop
from spinefm.pipeline.components.manifest import checkpoint_paths
from spinefm.pipeline.core.types import Patches
from spinefm.synthetic import PhantomConfig, generate_phantom

PATCH = {"mode": "spacing", "side_px": 600, "spacing_factor": 3.0}


def phantoms(count, size=128):
    return [generate_phantom(seed, PhantomConfig(image_size=size)) for seed in range(count)]


class Centre:
    """A stand-in Med-SA: logits of the low-res target (the vertebra's mask as training cuts it)."""

    def __init__(self, targets):
        self.targets = targets

    def to(self, device):
        return self

    def eval(self):
        return self

    def __call__(self, images, points):
        return torch.logit(self.targets.clamp(1e-4, 1 - 1e-4))


def test_segmenter_patches_are_the_training_patches():
    record = phantoms(1, 256)[0]
    model = MedSA(backbone="tiny")
    segmenter = MedSAAdapter(model, PATCH, model.input_size, model.low_res_size)
    side = patch_side(PATCH, median_spacing(record))
    image8 = to_uint8(record.load_image())
    centres = np.stack([v.centroid() for v in record.vertebrae])
    inputs, origins = segmenter.cut(image8, centres, [side] * len(centres))
    contexts = [cut_context(image8, v, side, model.input_size, 0.0) for v in record.vertebrae]
    training = VertebraPatchDataset(contexts, model.input_size, model.low_res_size)
    for i, sample in enumerate(training):
        assert torch.equal(torch.from_numpy(inputs[i]).float().div(255.0)[None], sample["image"])
        assert torch.equal(sample["point"], torch.full((2,), (model.input_size - 1) / 2))


class LeftHeavy(torch.nn.Module):
    """A stand-in classifier: class 0's logit is the patch's left half minus its right half, class 1's
    its mean brightness."""

    def forward(self, patches):
        half = patches.shape[-1] // 2
        left, right = patches[..., :half].mean(dim=(1, 2, 3)), patches[..., half:].mean(dim=(1, 2, 3))
        return torch.stack([4 * (left - right), patches.mean(dim=(1, 2, 3))], dim=1)


def test_the_classifier_averages_its_probabilities_over_scales_and_mirrors():
    film = np.zeros((64, 64), np.uint8)
    film[:, :30] = 255  # bright on the left
    centre = np.array([[31.5, 31.5]])
    plain = SpineEndAdapter(LeftHeavy(), ["a", "b"], PATCH, 16, scales=[1.0], hflip=False)
    scaled = SpineEndAdapter(LeftHeavy(), ["a", "b"], PATCH, 16, scales=[0.5, 1.0], hflip=True)
    single = plain.classify([Patches(film, centre, (40,))])[0][0]
    mirrored = plain.classify([Patches(film[:, ::-1].copy(), centre, (40,))])[0][0]
    smaller = plain.classify([Patches(film, centre, (20,))])[0][0]
    smaller_mirrored = plain.classify([Patches(film[:, ::-1].copy(), centre, (20,))])[0][0]
    assert single[0] > 0.5 > mirrored[0]
    averaged = scaled.classify([Patches(film, centre, (40,))])[0][0]
    assert np.allclose(averaged, np.mean([single, mirrored, smaller, smaller_mirrored], axis=0), atol=1e-6)
    default = SpineEndAdapter(LeftHeavy(), ["a", "b"], PATCH, 16)
    assert default.scales == [1.0] and default.hflip  # what infer.py and evaluate.py run
    with pytest.raises(ValueError, match="scales"):
        SpineEndAdapter(LeftHeavy(), ["a", "b"], PATCH, 16, scales=[])


def test_a_training_target_maps_back_onto_its_vertebra():
    """The low-res target training asks for, mapped back by the segmenter, is the vertebra again."""
    record = phantoms(1, 256)[0]
    low, size = 32, 64
    side = patch_side(PATCH, median_spacing(record))
    image8 = to_uint8(record.load_image())
    contexts = [cut_context(image8, v, side, size, 0.0) for v in record.vertebrae]
    targets = torch.stack([s["target"][0] for s in VertebraPatchDataset(contexts, size, low)])[:, None]
    segmenter = MedSAAdapter(Centre(targets), PATCH, size, low, cpu_runtime="torch")
    centres = np.stack([v.centroid() for v in record.vertebrae])
    (crops,) = segmenter.segment([Patches(image8, centres, (side,) * len(centres))])
    height, width = image8.shape
    for crop, vertebra in zip(crops, record.vertebrae):
        x0, y0 = crop.offset
        assert x0 >= 0 and y0 >= 0 and x0 + crop.shape[1] <= width and y0 + crop.shape[0] <= height
        mask, offset = vertebra.mask_crop()
        assert crop_iou(crop.binary(0.5), crop.offset, mask, offset) > 0.97
        assert np.linalg.norm(crop.weighted_centroid(0.5) - (np.argwhere(mask)[:, ::-1].mean(axis=0) + offset)) < 0.25


def test_detector_masks_map_onto_the_original_grid_like_a_linear_resize():
    rng = np.random.default_rng(0)
    for scaled, original in [((64, 48), (128, 96)), ((64, 48), (50, 37))]:
        mask = np.zeros(scaled, np.float32)
        mask[20:30, 10:25] = rng.random((10, 15))
        crop = to_original_grid(mask, original)
        full = cv2.resize(mask, original[::-1], interpolation=cv2.INTER_LINEAR)
        x0, y0 = crop.offset
        h, w = crop.shape
        assert np.allclose(crop.values, full[y0 : y0 + h, x0 : x0 + w], atol=1e-5)
        outside = full.copy()
        outside[y0 : y0 + h, x0 : x0 + w] = 0
        assert not outside.any()  # the crop holds every non-zero pixel
    assert to_original_grid(np.zeros((8, 8), np.float32), (16, 16)) is None


def test_adapters_load_from_the_manifest_and_detect(manifest):
    components = load_components(manifest, overrides={"maskrcnn": {"score_threshold": 0.0, "mask_threshold": 0.5}})
    assert components.segmenter.info["component"] == "medsa" and components.dataset["name"] == "synthetic"
    assert components.classifier.classes[:2] == ["background", "vertebra"]
    records = phantoms(3)
    images = [r.load_image() for r in records]
    for record, detections in zip(records, components.detector.detect(images)):
        height, width = record.image_shape()
        assert detections, "an untrained detector still scores above 0"
        for d in detections:
            x0, y0 = d.probability.offset
            assert (
                0 <= x0 and 0 <= y0 and x0 + d.probability.shape[1] <= width and y0 + d.probability.shape[0] <= height
            )
            assert np.isfinite(d.centroid).all() and 0 <= d.centroid[0] < width and 0 <= d.centroid[1] < height
            assert d.area > 0 and 0 <= d.score <= 1
    centres = np.array([[20.0, 30.0], [60.0, 70.0]])
    assert components.predictor.predict(np.stack([centres[[0, 1, 0]]] * 2), np.array([[100.0, 128.0]] * 2)).shape == (
        2,
        2,
    )
    film = to_uint8(images[0])
    first, second = components.classifier.classify(
        [Patches(film, centres, (20, 30)), Patches(film, centres[:1], (30,))]
    )
    assert first.shape == (2, len(components.classifier.classes)) and np.allclose(first.sum(axis=1), 1.0)
    assert second.shape == (1, len(components.classifier.classes))
    with pytest.raises(UserError, match="^the checkpoint manifest lists no checkpoint"):
        checkpoint_paths({"components": {}})


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"components": {', r"is not readable JSON \(JSONDecodeError: .*line 1 column 17 .*\); expected the manifest"),
        (
            json.dumps({"components": {"maskrcnn": "/x/maskrcnn.ckpt"}}),
            r': components.maskrcnn is the string "/x/maskrcnn.ckpt", expected an object \{"best_checkpoint": PATH, '
            r'"last_checkpoint": PATH\}; write it as "maskrcnn": \{"best_checkpoint": that path\}',
        ),
        (json.dumps({"components": {}}), r" lists no checkpoint \(its components are empty\); train first"),
        ("[]", r' holds \[\], expected an object \{"dataset"'),
    ],
    ids=["malformed JSON", "paths as strings", "no components", "not an object"],
)
def test_a_malformed_manifest_is_a_user_error_naming_it(tmp_path, text, expected):
    path = tmp_path / "manifest.json"
    path.write_text(text)
    with pytest.raises(UserError, match=expected) as raised:
        load_components(path)
    assert str(raised.value).startswith(f"checkpoint manifest {path}") and "\n" not in str(raised.value)


def test_the_loop_runs_end_to_end_on_tiny_models(manifest):
    """Thresholds at 0 and no overlap stop make the tiny models walk; quality is not asserted."""
    walking = {"mask_threshold": 0.0, "final_threshold": 0.0, "overlap_iou": 1.0, "max_steps": 3, "duplicate_iou": 1.0}
    loop = load_loop(manifest, walking, overrides={"maskrcnn": {"score_threshold": 0.0, "mask_threshold": 0.5}})
    default = load_loop(manifest)
    assert default.config.mask_threshold == default.config.final_threshold == 0.9  # Med-SA's inference setting
    assert default.config.labels.end_levels["lateral_cervical"]["top"] == "C2"
    for record in phantoms(3):
        height, width = record.image_shape()
        for run in (loop, default):
            result = run.run(record.load_image(), view=record.view, image_id=record.id)
            assert result.trace.status in ("ok", "no_detections", "no_seeds")
            assert set(result.trace.stops.values()) <= set(STOP_REASONS)
            for instance in result.instances:
                assert np.isfinite(instance.centroid).all()
                assert 0 <= instance.centroid[0] <= width - 1 and 0 <= instance.centroid[1] <= height - 1
                assert instance.level is not None and instance.mask.any()
                x0, y0 = instance.offset  # a crop inside the film (the whole film where the patch covers it)
                assert (
                    0 <= x0
                    and 0 <= y0
                    and x0 + instance.mask.shape[1] <= width
                    and y0 + instance.mask.shape[0] <= height
                )
        encoded = []
        hooks = [
            network.register_forward_pre_hook(lambda _, args, encoded=encoded: encoded.append(len(args[0])))
            for network in loop.segmenter.networks()
        ]
        walked = loop.run(record.load_image(), view=record.view)
        for hook in hooks:
            hook.remove()
        assert walked.trace.status == "ok" and walked.trace.steps  # every component was called
        assert all(len(walked.trace.steps_in(d)) <= 3 for d in ("up", "down"))
        # the level map (train_all's fifth stage), read at every chain position, went to the decoder
        assert walked.trace.level_map_names == loop.level_mapper.names
        assert walked.trace.chain_level_map.shape == (len(walked.trace.chain_centroids), len(loop.level_mapper.names))
        assert segmented_patches(dataclasses.asdict(walked.trace)) == sum(encoded)  # as evaluate.py counts them


def test_final_masks_are_binarised_at_mask_threshold_unless_set():
    assert LoopConfig(mask_threshold=0.4).final_threshold == 0.4
    assert LoopConfig(mask_threshold=0.4, final_threshold=0.7).final_threshold == 0.7


def test_a_segmenter_checkpoint_may_carry_its_final_threshold(manifest, tmp_path):
    components = json.loads(manifest.read_text())
    segmenter = components["components"]["medsa"]
    checkpoint = torch.load(segmenter["best_checkpoint"], map_location="cpu", weights_only=False)
    checkpoint["spinefm"]["inference"]["final_threshold"] = 0.4
    torch.save(checkpoint, tmp_path / "medsa.ckpt")
    segmenter["best_checkpoint"] = str(tmp_path / "medsa.ckpt")
    (tmp_path / "manifest.json").write_text(json.dumps(components))
    config = load_loop(tmp_path / "manifest.json").config
    assert config.mask_threshold == 0.9 and config.final_threshold == 0.4
    assert load_loop(tmp_path / "manifest.json", {"final_threshold": 0.6}).config.final_threshold == 0.6


def test_a_loop_config_object_is_used_as_given(manifest):
    config = LoopConfig(max_steps=2)
    loop = load_loop(manifest, config)
    assert isinstance(loop, InductiveLoop) and loop.config.max_steps == 2 and loop.config.mask_threshold == 0.9
    assert (
        loop.config.labels.first_level == "C2" and config.labels.first_level is None
    )  # the caller's object is untouched
