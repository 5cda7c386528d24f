"""The training framework around the stages: config groups, resume, DDP on CPU processes."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from helpers.train_runs import REPO, metrics, run_dirs, run_train

CONFIGS = REPO / "configs"


def options(group):
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def compose_train(*overrides):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)


@pytest.mark.parametrize("trainer", options("trainer"))
@pytest.mark.parametrize("logger", options("logger"))
def test_trainer_and_logger_options_compose(trainer, logger, tmp_path):
    cfg = compose_train(
        "stage=point_predictor", f"trainer={trainer}", f"logger={logger}", f"paths.output_dir={tmp_path}"
    )
    assert cfg.trainer._target_ == "lightning.pytorch.Trainer"
    assert cfg.trainer.max_epochs == cfg.stage.max_epochs
    for name, logger_cfg in cfg.logger.items():
        built = instantiate(logger_cfg, **({"offline": True} if name == "wandb" else {}))
        assert Path(built.save_dir) == tmp_path


@pytest.mark.parametrize("stage", options("stage"))
def test_every_stage_composes_with_callbacks_and_debug(stage, tmp_path):
    for debug in options("debug"):
        cfg = compose_train(f"stage={stage}", f"debug={debug}", f"paths.output_dir={tmp_path}")
        callbacks = {name: instantiate(c) for name, c in cfg.callbacks.items()}
        assert callbacks["model_checkpoint"].monitor == cfg.stage.monitor
        assert "/" not in cfg.callbacks.model_checkpoint.filename
        assert cfg.stage.module._target_.startswith("spinefm.training.")
        assert cfg.stage.data._target_.startswith("datamodules.")


def test_resume_from_last_checkpoint_continues_the_step_count(tmp_path):
    # mode=max on an error: the best checkpoint stays at epoch 0, last.ckpt must still move on
    done = run_train(
        tmp_path, "stage=point_predictor", "stage.max_epochs=2", "stage.mode=max", "trainer.profiler=simple"
    )
    assert "FIT Profiler Report" in done.stdout + done.stderr and "run_training_batch" in done.stdout + done.stderr
    (first,) = run_dirs(tmp_path, "train_point_predictor")
    steps = metrics(first)["global_step"]
    assert steps > 0 and metrics(first)["epochs"] == 2
    last = first / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == steps
    assert torch.load(metrics(first)["best_checkpoint"], weights_only=True)["global_step"] == steps // 2
    run_train(tmp_path, "stage=point_predictor", "stage.max_epochs=4", f"ckpt_path={last}")
    resumed = run_dirs(tmp_path, "train_point_predictor")[-1]
    assert metrics(resumed)["global_step"] == 2 * steps and metrics(resumed)["epochs"] == 4
    checkpoint = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 2 * steps and checkpoint["spinefm"]["component"] == "point_predictor"


def test_ddp_on_two_cpu_processes_trains_into_one_run_folder(tmp_path):
    run_train(tmp_path, "stage=point_predictor", "stage.max_epochs=2", "trainer=ddp_cpu")
    (run,) = run_dirs(tmp_path, "train_point_predictor")  # one folder, not one per process
    result = metrics(run)
    assert result["world_size"] == 2
    assert result["global_step"] > 0 and Path(result["best_checkpoint"]).is_file()


def test_train_all_writes_a_manifest_of_five_loadable_checkpoints(manifest):
    """`manifest`: tests/conftest.py runs `train.py experiment=train_all_tiny debug=limit` once."""
    import json

    from spinefm.checkpoints import load_component

    run = manifest.parent
    manifest = json.loads(manifest.read_text())
    assert manifest["dataset"]["name"] == "synthetic"
    assert list(manifest["components"]) == ["maskrcnn", "medsa", "point_predictor", "spine_end", "level_map"]
    for name, component in manifest["components"].items():
        assert Path(component["best_checkpoint"]).parent == run / name / "checkpoints"
        model, info = load_component(component["best_checkpoint"])
        assert info["dataset"]["name"] == "synthetic" and info["component"] == name and not model.training
        assert (run / name / "metrics.json").is_file() and (run / name / "config.yaml").is_file()


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes(experiment, tmp_path):
    from spinefm.training.base import build_optimizers
    from spinefm.training.run import stage_config

    cfg = compose_train(f"experiment={experiment}", f"paths.output_dir={tmp_path}")
    configs = [stage_config(cfg, name, tmp_path / name) for name in cfg.stages] if cfg.get("stages") else [cfg]
    for stage_cfg in configs:
        assert stage_cfg.stage.module._target_.startswith("spinefm.training.")
        trainer = instantiate(stage_cfg.trainer, _partial_=True)
        assert trainer.keywords["max_epochs"] == stage_cfg.stage.max_epochs
        assert instantiate(stage_cfg.callbacks.model_checkpoint).dirpath.startswith(
            str(tmp_path / stage_cfg.stage.name)
        )
        module = stage_cfg.stage.module
        built = build_optimizers([torch.zeros(1, requires_grad=True)], module.optimizer, module.get("scheduler"))
        if module.get("scheduler"):
            assert type(built["lr_scheduler"]["scheduler"]).__name__ == module.scheduler._target_.rsplit(".", 1)[1]


def test_every_stage_follows_the_top_level_num_workers(tmp_path):
    from spinefm.training.run import stage_config

    cfg = compose_train(
        "experiment=train_all", "num_workers=3", "trainer.profiler=simple", f"paths.output_dir={tmp_path}"
    )
    for name in cfg.stages:
        stage_cfg = stage_config(cfg, name, tmp_path / name)
        assert stage_cfg.stage.data.num_workers == 3
        trainer = instantiate(stage_cfg.trainer, enable_progress_bar=False, logger=False)
        assert type(trainer.profiler).__name__ == "SimpleProfiler"
    assert compose_train("stage=medsa").stage.data.num_workers == "auto"


def test_auto_workers_leave_one_cpu_to_training_and_stay_capped(monkeypatch):
    from datamodules.base import MAX_AUTO_WORKERS, worker_count

    for cpus, expected in ((1, 0), (2, 1), (6, 5), (64, MAX_AUTO_WORKERS)):
        monkeypatch.setattr("os.sched_getaffinity", lambda pid, cpus=cpus: set(range(cpus)))
        assert worker_count("auto") == expected
    assert worker_count(0) == 0 and worker_count(4) == 4
    for bad in (-1, "many", 1.5, True):
        with pytest.raises(ValueError, match="num_workers must be"):
            worker_count(bad)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_loaders_keep_their_workers_between_epochs(num_workers):
    from datamodules.spine_end import SpineEndDataModule
    from helpers.train_runs import synthetic_dataset

    data = SpineEndDataModule(
        synthetic_dataset(2, 1, image_size=128), input_size=32, num_workers=num_workers, balance=0.5
    )
    data.setup()
    for loader in (data.train_dataloader(), data.val_dataloader()):  # the balanced sampler's loader too
        assert loader.num_workers == num_workers and loader.persistent_workers == (num_workers > 0)
        assert loader.pin_memory == torch.cuda.is_available()


def test_a_run_may_set_tf32_matmuls_and_channels_last_weights(tmp_path):
    from spinefm.training.run import build_stage, stage_config

    cfg = compose_train(
        "experiment=train_all_tiny", "channels_last=true", "matmul_precision=high", f"paths.output_dir={tmp_path}"
    )
    try:
        _, module = build_stage(stage_config(cfg, "spine_end", tmp_path))
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision("highest")
    convolutions = [p for p in module.parameters() if p.dim() == 4]
    assert convolutions and all(p.is_contiguous(memory_format=torch.channels_last) for p in convolutions)


@pytest.mark.parametrize(
    ("flags", "accelerator", "asked", "expected"),
    [
        ({}, "cpu", "bf16-mixed", "32-true"),  # AVX2 only: emulated bf16, float32 instead
        ({"avx512_bf16": True}, "cpu", "bf16-mixed", "bf16-mixed"),
        ({"amx_bf16": True}, "auto", "bf16-mixed", "bf16-mixed"),
        ({}, "gpu", "bf16-mixed", "bf16-mixed"),  # the CPU's flags say nothing about a GPU
        ({}, "cpu", "32-true", "32-true"),
    ],
)
def test_bf16_is_asked_of_a_cpu_only_where_it_computes_it(flags, accelerator, asked, expected, monkeypatch):
    from spinefm.training import precision

    capabilities = {"architecture": "x86_64", "avx2": True, "avx512_bf16": False, "amx_bf16": False, **flags}
    monkeypatch.setattr(precision.torch.cpu, "get_capabilities", lambda: capabilities)
    monkeypatch.setattr(precision.torch.cuda, "is_available", lambda: False)
    assert precision.effective_precision(asked, accelerator) == expected
