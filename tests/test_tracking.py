"""Experiment tracking: what a run folder holds, every logger at once, and wandb offline (written
locally, grouped by sweep, never reaching the network)."""

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from wandb.proto import wandb_internal_pb2

from helpers.train_runs import REPO, TINY_DATA, metrics, run_dirs, run_train


@pytest.fixture
def offline_wandb(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there: an upload could not succeed
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_RUN_GROUP", raising=False)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb_home" / name))


def wandb_run_file(run_dir):
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    (records,) = offline.glob("run-*.wandb")
    return records


def encoded_run_group(group: str) -> bytes:
    """How a run record's group is serialised (protobuf: field tag, length, text)."""
    field = wandb_internal_pb2.RunRecord.DESCRIPTOR.fields_by_name["run_group"]
    assert len(group) < 128  # a one-byte length
    return bytes([field.number << 3 | 2, len(group)]) + group.encode()


def test_a_run_folder_holds_its_config_checkpoints_metrics_and_every_logger(tmp_path, offline_wandb):
    run_train(tmp_path, "stage=point_predictor", "debug=limit", "logger=[csv,tensorboard,wandb]")
    (run,) = run_dirs(tmp_path, "train_point_predictor")
    config_text = (run / "config.yaml").read_text()
    config = OmegaConf.load(run / "config.yaml")
    assert "${" not in config_text and config.paths.output_dir == str(run) and config.trainer.max_epochs == 2
    summary = metrics(run)
    assert summary["monitor"] == "val/error_px" and math.isfinite(summary["best_value"])
    best = Path(summary["best_checkpoint"])
    assert best.is_file() and best.parent == run / "checkpoints" and (run / "checkpoints" / "last.ckpt").is_file()
    with open(run / "csv" / "metrics.csv", newline="") as stream:
        assert "val/error_px" in next(csv.reader(stream))
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert wandb_run_file(run).stat().st_size > 0


def test_wandb_groups_the_runs_of_a_sweep_by_its_folder(tmp_path, offline_wandb):
    run_train(
        tmp_path, "stage=point_predictor", "debug=limit", "logger=wandb", "stage.module.optimizer.lr=1e-3,1e-2", "-m"
    )
    (sweep,) = (tmp_path / "train_point_predictor" / "multiruns").iterdir()
    files = [wandb_run_file(sweep / job) for job in ("0", "1")]
    assert files[0].name != files[1].name  # a run each, not the first one continued
    for path in files:
        assert encoded_run_group(sweep.name) in path.read_bytes()


def test_torchrun_processes_share_the_run_folder_named_on_the_command_line(tmp_path):
    """docs/clusters.md's torchrun line on two CPU processes: each process runs Hydra, so the folder is named once."""
    run = tmp_path / "train_point_predictor" / "runs" / "torchrun"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "train.py",
        "stage=point_predictor",
        "trainer=ddp_cpu",
        "debug=limit",
        f"paths.log_dir={tmp_path}",
        *TINY_DATA,
        f"hydra.run.dir={run}",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-5000:]
    assert [p.name for p in run.parent.iterdir()] == ["torchrun"] and metrics(run)["world_size"] == 2
