import numpy as np
import pytest
import torch

from datamodules.point_predictor import PointPredictorDataModule, centroid_windows
from helpers.train_runs import synthetic_dataset
from spinefm.data.record import ImageRecord, Vertebra
from spinefm.models.point_predictor import PointPredictor

SYNTHETIC = synthetic_dataset(train=24, val=8)


def column(levels, spacing=20.0, x=50.0):
    return [
        Vertebra(level, polygon=[[x - 10, y - 6], [x + 10, y - 6], [x + 10, y + 6], [x - 10, y + 6]])
        for level, y in zip(levels, np.arange(len(levels)) * spacing + 30)
    ]


def test_windows_both_directions_and_skip_gaps():
    record = ImageRecord("r", column(["L1", "L2", "L3", "L4", "L5"]), image=np.zeros((200, 100), np.uint8))
    samples = centroid_windows(record, (100, 200))
    assert len(samples) == 4  # two windows, each read down and up
    down, up = samples[0], samples[1]
    np.testing.assert_allclose(down["window"][:, 1], [30, 50, 70])
    np.testing.assert_allclose(down["target"], [50, 90])
    np.testing.assert_allclose(up["window"][:, 1], [90, 70, 50])
    np.testing.assert_allclose(up["target"], [50, 30])
    assert down["target_height"] == pytest.approx(12.0)  # extent along the step
    gap = ImageRecord("g", column(["L1", "L2", "L4", "L5", "S1"]), image=np.zeros((200, 100), np.uint8))
    assert centroid_windows(gap, (100, 200)) == []  # every 4-window spans the missing L3


@pytest.mark.parametrize("parameterisation", ["relative", "absolute"])
def test_residual_model_starts_at_constant_velocity(parameterisation):
    model = PointPredictor(parameterisation=parameterisation)
    window = torch.tensor([[[10.0, 10.0], [12.0, 30.0], [15.0, 52.0]]])
    np.testing.assert_allclose(model(window, torch.tensor([[100.0, 200.0]])).detach(), [[18.0, 74.0]], atol=1e-4)


def test_relative_prediction_is_translation_and_scale_invariant():
    torch.manual_seed(0)
    model = PointPredictor(residual=False)
    window = torch.tensor([[[10.0, 10.0], [12.0, 30.0], [15.0, 52.0]]])
    size = torch.tensor([[100.0, 200.0]])
    base = model(window, size)
    moved = model(window * 3 + torch.tensor([40.0, -7.0]), size * 5)
    np.testing.assert_allclose(moved.detach(), (base * 3 + torch.tensor([40.0, -7.0])).detach(), atol=1e-4)
    assert not torch.allclose(
        PointPredictor("absolute", residual=False)(window * 3, size),
        PointPredictor("absolute", residual=False)(window, size) * 3,
    )


def test_trained_model_beats_constant_velocity():
    from lightning import Trainer, seed_everything

    from spinefm.training.point_predictor import PointPredictorModule

    seed_everything(0)
    data = PointPredictorDataModule(SYNTHETIC, batch_size=32, flip_probability=0.5)
    module = PointPredictorModule(model={"hidden": [50]}, optimizer={"_target_": "torch.optim.Adam", "lr": 3e-3})
    trainer = Trainer(
        max_epochs=40, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(module, datamodule=data)
    metrics = trainer.validate(module, datamodule=data, verbose=False)[0]
    assert metrics["val/error_px"] < 0.9 * metrics["val/baseline_error_px"]
    assert metrics["val/error_heights"] < 0.5
