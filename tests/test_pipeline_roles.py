"""Roles: a checkpoint names its role and adapter, so a new detector family plugs in without any
edit to the pipeline; older checkpoints (without those names) still load."""

import json
import re

import numpy as np
import pytest
import torch
from torch import nn

from spinefm.checkpoints import LEGACY, load_component, read_checkpoint
from spinefm.errors import UserError
from spinefm.models.medsa import MedSA
from spinefm.pipeline.components.adapters import Adapter
from spinefm.pipeline.components.loading import load_loop
from spinefm.pipeline.components.roles import adapter_class, register_adapter
from spinefm.pipeline.core.types import Detection, MaskCrop
from spinefm.synthetic import PhantomConfig, generate_phantom
from spinefm.training.base import ComponentModule
from spinefm.training.maskrcnn import MaskRCNNModule
from spinefm.training.medsa import MedSAModule
from spinefm.training.point_predictor import PointPredictorModule
from spinefm.training.spine_end import SpineEndModule


class StubNet(nn.Module):
    """A 'detector network': one learnt offset added to the film's brightest rows."""

    def __init__(self, rows: int):
        super().__init__()
        self.rows = rows
        self.offset = nn.Parameter(torch.zeros(2))


@register_adapter("stub_detector")
class StubDetector(Adapter):
    """Detections at the centres of the film's `rows` brightest horizontal bands."""

    role = "detector"
    settings = ("radius",)

    def __init__(self, model, radius: int):
        super().__init__(model)
        self.radius = radius

    def detect(self, films):
        return [self._detect(film) for film in films]

    def _detect(self, film):
        height, width = film.shape
        bands = np.array_split(np.arange(height), self.model.rows)
        detections = []
        for band in bands:
            y = float(band.mean())
            x = float(np.argmax(film[band].sum(axis=0)))
            centre = np.array([x, y]) + self.model.offset.detach().numpy()
            side = 2 * self.radius + 1
            crop = MaskCrop(np.ones((side, side), np.float32), (int(x) - self.radius, int(y) - self.radius))
            detections.append(Detection(crop, 0.9, centre, float(side * side)))
        return detections


def stub_checkpoint(path, adapter="stub_detector"):
    info = {
        "format_version": 1,
        "component": "stub",
        "role": "detector",
        "adapter": adapter,
        "builder": "test_pipeline_roles:StubNet",
        "model": {"rows": 12},
        "inference": {"radius": 3},
        "dataset": {"name": "synthetic"},
        "trainable_only": False,
    }
    torch.save({"state_dict": {"model.offset": torch.tensor([0.5, -0.5])}, "spinefm": info}, path)
    return path


def with_entry(manifest, tmp_path, old: str, new: str, checkpoint) -> str:
    data = json.loads(manifest.read_text())
    data["components"] = {new if name == old else name: entry for name, entry in data["components"].items()}
    data["components"][new] = {"best_checkpoint": str(checkpoint), "last_checkpoint": str(checkpoint)}
    path = tmp_path / f"manifest_{new}.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("adapter", ["stub_detector", "test_pipeline_roles:StubDetector"])
def test_a_new_detector_family_plugs_in_by_its_checkpoint(manifest, tmp_path, adapter):
    """Registered by name or named by its import path: the loop runs on the stub's detections."""
    checkpoint = stub_checkpoint(tmp_path / "stub.ckpt", adapter)
    stub_manifest = with_entry(manifest, tmp_path, "maskrcnn", "stub", checkpoint)
    loop = load_loop(
        stub_manifest,
        {"mask_threshold": 0.0, "final_threshold": 0.0, "overlap_iou": 1.0, "max_steps": 2},
        overrides={"stub": {"radius": 2}},
    )
    assert isinstance(loop.detector, StubDetector) and loop.detector.radius == 2
    assert loop.detector.info["component"] == "stub" and torch.equal(
        loop.detector.model.offset.data, torch.tensor([0.5, -0.5])
    )
    record = generate_phantom(0, PhantomConfig(image_size=128))
    result = loop.run(record.load_image(), record.view, record.id)
    assert len(result.trace.detection_centroids) == 12 and result.trace.status == "ok" and result.trace.steps


def test_a_manifest_needs_one_checkpoint_per_role(manifest, tmp_path):
    twice = json.loads(manifest.read_text())
    twice["components"]["stub"] = {"best_checkpoint": str(stub_checkpoint(tmp_path / "stub.ckpt"))}
    (tmp_path / "twice.json").write_text(json.dumps(twice))
    with pytest.raises(UserError, match=r"per role.*it has 2 detectors \(maskrcnn, stub\): list one") as raised:
        load_loop(tmp_path / "twice.json")
    assert str(raised.value).startswith(f"checkpoint manifest {tmp_path / 'twice.json'} needs exactly one")
    missing = json.loads(manifest.read_text())
    del missing["components"]["spine_end"]
    with pytest.raises(UserError, match=r"^the checkpoint manifest needs .* it has no classifier"):
        load_loop(missing)
    with pytest.raises(UserError, match=re.escape(f"for ['yolo'], which checkpoint manifest {manifest} does not")):
        load_loop(manifest, overrides={"yolo": {"score_threshold": 0.5}})


def damaged_checkpoint(path, case: str):
    """(a checkpoint file damaged as `case` says, what the error must say about it)."""
    if case == "Med-SA trainable parameters that do not fit":
        trained = {f"model.{k}": v for k, v in MedSA(backbone="tiny").trainable_state_dict().items()}
        for key in sorted(trained)[:4]:
            del trained[key]
        info = {"format_version": 1, "component": "medsa", "model": {"backbone": "tiny"}, "trainable_only": True}
        torch.save({"state_dict": {**trained, "model.extra": torch.zeros(1)}, "spinefm": info}, path)
        return path, r"does not fit a medsa built .*: missing 4 keys \(.+, .+, .+, \.\.\.\), unexpected 1 key \(extra\)"
    checkpoint = torch.load(stub_checkpoint(path), weights_only=True)
    if case == "cut short":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path, r"cannot be read \(RuntimeError: .+\); expected a whole checkpoint .*cut short"
    if case == "no spinefm entry":
        del checkpoint["spinefm"]
        expected = r"not a SpineFM-Lightning component checkpoint \(no 'spinefm' entry\); use a checkpoint written by"
    elif case == "a newer format":
        checkpoint["spinefm"]["format_version"] = 2
        expected = r"newer SpineFM-Lightning \(checkpoint format 2; this one reads formats up to 1\); update"
    elif case == "weights that do not fit":
        checkpoint["state_dict"] = {"model.a": torch.zeros(1), "model.b": torch.zeros(1)}
        expected = r"does not fit a stub built from its own config: missing 1 key \(offset\), unexpected 2 keys \(a, b"
    else:  # weights of another shape
        checkpoint["state_dict"] = {"model.offset": torch.zeros(3)}
        expected = r"another shape for 1 key \(offset: \(3,\), the model's \(2,\)\); was the file edited"
    torch.save(checkpoint, path)
    return path, expected


@pytest.mark.parametrize(
    "case",
    [
        "cut short",
        "no spinefm entry",
        "a newer format",
        "weights that do not fit",
        "weights of another shape",
        "Med-SA trainable parameters that do not fit",
    ],
)
def test_a_bad_checkpoint_is_a_user_error_naming_it(tmp_path, case):
    path, expected = damaged_checkpoint(tmp_path / "bad.ckpt", case)
    with pytest.raises(UserError, match=expected) as raised:
        load_component(path)
    message = str(raised.value)
    assert message.startswith((f"checkpoint {path} ", f"{path} ")) and "\n" not in message


def test_an_adapter_name_must_be_registered_or_importable():
    with pytest.raises(ValueError, match="no adapter registered as 'yolo'.*maskrcnn"):
        adapter_class("yolo")
    with pytest.raises(ValueError, match="is not an adapter"):
        adapter_class("test_pipeline_roles:StubNet")
    with pytest.raises(ValueError, match="already registered"):
        register_adapter("maskrcnn")(StubDetector)


def test_a_checkpoint_from_before_roles_loads_with_its_components_role(manifest, tmp_path):
    entry = json.loads(manifest.read_text())["components"]["spine_end"]
    checkpoint = read_checkpoint(entry["best_checkpoint"])
    for key in ("role", "adapter", "builder"):
        del checkpoint["spinefm"][key]
    torch.save(checkpoint, tmp_path / "old.ckpt")
    model, info = load_component(tmp_path / "old.ckpt")
    assert (info["role"], info["adapter"], info["builder"]) == (
        "classifier",
        "spine_end",
        "spinefm.models.spine_end:SpineEndClassifier",
    )
    assert type(model).__name__ == "SpineEndClassifier"


def test_every_stage_module_names_its_role_adapter_and_builder():
    """The stage modules are the source of their checkpoints' identity; LEGACY repeats it for older files."""
    for module in (MaskRCNNModule, MedSAModule, PointPredictorModule, SpineEndModule):
        identity = module.identity()
        assert LEGACY[identity["component"]] == (identity["role"], identity["adapter"], identity["builder"])
        assert adapter_class(identity["adapter"]).role == identity["role"]

    class Unnamed(ComponentModule):
        component = "yolo"

    with pytest.raises(TypeError, match="Unnamed must set role, adapter, builder"):
        Unnamed.identity()
