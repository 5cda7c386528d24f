"""The CPU runtimes: an ONNX export run by onnxruntime or OpenVINO gives torch's masks, is cached by
the weights (a changed or damaged export is made again) and a missing runtime package is named."""

import importlib.util

import numpy as np
import pytest
import torch

from helpers.threads import torch_threads
from spinefm.cli import UserError
from spinefm.models.medsa import MedSA
from spinefm.pipeline.components.adapters import MedSAAdapter
from spinefm.pipeline.core.types import Patches
from spinefm.runtime import CpuRuntimeModule
from spinefm.runtime.cache import MODEL_FILE

PATCH = {"mode": "fixed", "side_px": 48, "spacing_factor": 3.0}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPINEFM_CACHE_DIR", str(tmp_path))
    return tmp_path / "onnx"


def medsa(seed: int) -> MedSA:
    """A tiny Med-SA whose adapters and decoder are not at their start (random, seeded)."""
    model = MedSA(backbone="tiny").eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "adapter" in name or name.startswith("mask_decoder"):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return model


def masks(runtime: str, model: MedSA, film: np.ndarray, centres: np.ndarray, streams: int = 2) -> list:
    adapter = MedSAAdapter(model, PATCH, model.input_size, model.low_res_size, cpu_runtime=runtime, cpu_streams=streams)
    return adapter.segment([Patches(film, centres, (48,) * len(centres))])[0]


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_a_cpu_runtime_gives_torchs_masks(cache, runtime):
    film = np.random.default_rng(0).integers(0, 256, (96, 128), dtype=np.uint8)
    centres = np.array([[30.0, 40.0], [64.0, 50.0], [100.0, 60.0]])
    reference = masks("torch", medsa(0), film, centres)
    with torch_threads(2):  # two patches side by side, one thread each, and one at a time on both
        for streams in (2, 1):
            exported = masks(runtime, medsa(0), film, centres, streams)
            assert len(list(cache.iterdir())) == 1
            for a, b in zip(exported, reference, strict=True):  # in the patches' order
                assert a.offset == b.offset and np.abs(a.values - b.values).max() < 1e-4
                assert not np.array_equal(a.values, np.zeros_like(a.values))


def test_an_export_follows_the_weights_and_a_damaged_one_is_made_again(cache):
    images = torch.rand(2, 3, 64, 64)
    first, second = medsa(0), medsa(1)
    runtime = CpuRuntimeModule(first.image_encoder, "onnxruntime")
    with torch.inference_mode():
        assert torch.allclose(runtime(images), first.image_encoder(images), atol=1e-4)
    (entry,) = cache.iterdir()
    # retrained weights (same architecture): another export, with the new weights' output
    retrained = CpuRuntimeModule(second.image_encoder, "onnxruntime")
    with torch.inference_mode():
        assert torch.allclose(retrained(images), second.image_encoder(images), atol=1e-4)
        assert not torch.allclose(retrained(images), runtime(images), atol=1e-3)
    assert len(list(cache.iterdir())) == 2
    # a truncated graph (a crash, a full disk) is exported again on next use
    graph = entry / MODEL_FILE
    graph.write_bytes(graph.read_bytes()[:100])
    with torch.inference_mode():
        assert torch.allclose(
            CpuRuntimeModule(first.image_encoder, "onnxruntime")(images), first.image_encoder(images), atol=1e-4
        )
    assert graph.stat().st_size > 1000


def test_the_module_itself_runs_where_a_gradient_is_wanted(cache):
    model = medsa(0)
    runtime = CpuRuntimeModule(model.image_encoder, "onnxruntime")
    images = torch.rand(1, 3, 64, 64, requires_grad=True)
    runtime(images).sum().backward()
    assert images.grad is not None and not cache.exists()


def test_a_missing_runtime_package_is_named(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else find_spec(name, *a)
    )
    with pytest.raises(UserError, match="Python package 'openvino'.*pip install openvino"):
        CpuRuntimeModule(torch.nn.Identity(), "openvino")
    with pytest.raises(UserError, match="unknown CPU runtime 'tensorrt'"):
        CpuRuntimeModule(torch.nn.Identity(), "tensorrt")


class DataDependent(torch.nn.Module):
    """A module torch.export cannot trace (a branch on the input's values)."""

    def forward(self, inputs):
        return inputs * 2 if inputs.sum() > 0 else inputs


def test_a_module_that_cannot_be_exported_runs_in_torch_item_by_item(cache):
    """As the export would run them (a batch does not pay on a CPU): each item takes its own branch."""
    runtime = CpuRuntimeModule(DataDependent().eval(), "onnxruntime")
    images = torch.stack([torch.rand(3, 8, 8), -torch.rand(3, 8, 8)])
    with torch.inference_mode(), pytest.warns(RuntimeWarning, match="could not be run by onnxruntime.*runs in torch"):
        assert torch.equal(runtime(images), torch.stack([images[0] * 2, images[1]]))
