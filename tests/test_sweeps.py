"""Sweeps through train.py in subprocesses, as a user runs them: an Optuna search resumed after an
interruption, a failing trial, a plain grid (-m a=1,2), DDP trials, run folders that never collide.
(A single DDP run keeps to one folder: tests/test_train_framework.py.)"""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from helpers.train_runs import REPO, TINY_DATA, metrics, run_train

SEARCHES = sorted(p.stem for p in (REPO / "configs" / "hparams_search").glob("*.yaml"))


def train_command(log_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, "train.py", f"paths.log_dir={log_dir}", *TINY_DATA, *overrides]


def read_table(sweep: Path) -> list[dict]:
    with open(sweep / "trials.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def load_study(sweep: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweep / 'optuna.db'}")


@pytest.mark.parametrize("search", SEARCHES)
def test_every_search_composes_on_keys_of_its_stage(search, tmp_path):
    stage = [] if search != "optuna" else ["stage=spine_end"]  # the generic search takes any stage
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose(
            "train", [f"hparams_search={search}", f"paths.log_dir={tmp_path}", *stage], return_hydra_config=True
        )
    sweeper = cfg.hydra.sweeper
    assert sweeper.direction == {"min": "minimize", "max": "maximize"}[cfg.stage.mode]
    assert sweeper.storage == f"sqlite:///{tmp_path}/train_{cfg.stage.name}/sweeps/{cfg.stage.name}_synthetic/optuna.db"
    assert search == "optuna" or (cfg.stage.name == search and sweeper.params)
    for key in sweeper.params or {}:
        assert OmegaConf.select(cfg, key, default="absent") != "absent", f"{search}: {key} is not a key of the stage"


def test_an_interrupted_optuna_sweep_resumes_where_it_stopped(tmp_path):
    sweep = tmp_path / "train_point_predictor" / "sweeps" / "point_predictor_synthetic"
    search = ["hparams_search=point_predictor", "hydra.sweeper.n_trials=2"]
    # First start: long trials, interrupted (Ctrl-C) once trial 0 has trained an epoch.
    log = tmp_path / "first.log"
    with open(log, "w") as output:
        first = subprocess.Popen(
            train_command(tmp_path, *search, "stage.max_epochs=3000", "stage.patience=3000", "-m"),
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
            # a shell's background job (CI, nohup ... &) ignores SIGINT, and children inherit that: restore Ctrl-C
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + 300
        while not (sweep / "0" / "checkpoints" / "last.ckpt").is_file():
            assert first.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "trial 0 never started training"
            time.sleep(0.05)
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=120) != 0
    assert [t.state for t in load_study(sweep, "point_predictor_synthetic").trials] == [optuna.trial.TrialState.RUNNING]

    # The same command (short trials now): trial 0 runs again as trial 1, trial 2 completes the two.
    run_train(tmp_path, *search, "debug=limit", "-m")
    study = load_study(sweep, "point_predictor_synthetic")
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL", "COMPLETE", "COMPLETE"] and study.user_attrs["interrupted_trials"] == [0]
    assert study.trials[1].params == study.trials[0].params and study.trials[2].params != study.trials[0].params
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2"]

    table = read_table(sweep)
    assert [(row["job"], row["status"]) for row in table] == [
        ("0", "unfinished"),
        ("1", "completed"),
        ("2", "completed"),
    ]
    for row, trial in zip(table[1:], study.trials[1:]):
        assert float(row["val/error_px"]) == pytest.approx(trial.value) == metrics(sweep / row["job"])["best_value"]
        assert float(row["stage.module.optimizer.lr"]) == pytest.approx(trial.params["stage.module.optimizer.lr"])
    best = json.loads((sweep / "best.json").read_text())
    assert best["value"] == pytest.approx(study.best_value) and best["job"] == str(study.best_trial.number)
    assert Path(best["best_checkpoint"]).parent == sweep / best["job"] / "checkpoints"

    # Once more: the study has its two trials, nothing runs.
    done = run_train(tmp_path, *search, "debug=limit", "-m")
    assert len(load_study(sweep, "point_predictor_synthetic").trials) == 3
    assert f"job {best['job']}, val/error_px" in done.stdout


def test_a_failing_trial_does_not_end_the_sweep(tmp_path):
    # A grid over an impossible and a good learning rate: both run, in either order.
    run_train(
        tmp_path,
        "hparams_search=optuna",
        "stage=point_predictor",
        "hydra/sweeper/sampler=grid",
        "stage.module.optimizer.lr=choice(-1.0,0.001)",
        "debug=limit",
        "-m",
    )
    sweep = tmp_path / "train_point_predictor" / "sweeps" / "point_predictor_synthetic"
    study = load_study(sweep, "point_predictor_synthetic")
    outcome = {t.params["stage.module.optimizer.lr"]: t.state.name for t in study.trials}
    assert outcome == {-1.0: "FAIL", 0.001: "COMPLETE"}
    rows = {float(row["stage.module.optimizer.lr"]): row for row in read_table(sweep)}
    assert rows[-1.0]["status"] == "failed" and "Invalid learning rate" in rows[-1.0]["error"]
    assert rows[0.001]["status"] == "completed" and not rows[0.001]["error"]
    assert "Traceback" in (sweep / rows[-1.0]["job"] / "train.log").read_text()  # its job log keeps the why
    assert json.loads((sweep / "best.json").read_text())["job"] == rows[0.001]["job"]


def test_a_grid_sweep_writes_a_folder_and_a_row_per_value(tmp_path):
    run_train(tmp_path, "stage=point_predictor", "stage.module.optimizer.lr=1e-3,1e-2", "debug=limit", "-m")
    (sweep,) = (tmp_path / "train_point_predictor" / "multiruns").iterdir()
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    table = read_table(sweep)
    assert list(table[0]) == ["job", "status", "stage.module.optimizer.lr", "val/error_px", "error"]
    assert [(row["job"], row["stage.module.optimizer.lr"]) for row in table] == [("0", "0.001"), ("1", "0.01")]
    values = [metrics(sweep / row["job"])["best_value"] for row in table]
    assert [float(row["val/error_px"]) for row in table] == pytest.approx(values)
    best = json.loads((sweep / "best.json").read_text())
    winner = table[values.index(min(values))]
    assert best["value"] == pytest.approx(min(values)) and best["params"] == {
        "stage.module.optimizer.lr": winner["stage.module.optimizer.lr"]
    }


def test_ddp_trials_of_a_sweep_keep_to_their_own_folders(tmp_path):
    """Lightning starts each DDP trial's second process by re-running the command line: it must run
    that one job in the job's folder, not the sweep again."""
    run_train(
        tmp_path, "stage=point_predictor", "stage.module.optimizer.lr=1e-3,1e-2", "trainer=ddp_cpu", "debug=limit", "-m"
    )
    task = tmp_path / "train_point_predictor"
    assert [p.name for p in task.iterdir()] == ["multiruns"]
    (sweep,) = (task / "multiruns").iterdir()
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    for job in ("0", "1"):
        assert metrics(sweep / job)["world_size"] == 2 and (sweep / job / "train_ddp_process_1.log").is_file()
    assert [row["status"] for row in read_table(sweep)] == ["completed", "completed"]


def test_runs_started_together_get_their_own_folders(tmp_path):
    """Every entry point shares configs/hydra/default.yaml; the dataset check is the quickest to start."""
    command = [
        sys.executable,
        "-m",
        "spinefm.data.check",
        f"paths.log_dir={tmp_path}",
        "dataset.reader.num_images={train:2,val:1,test:1}",
        "dataset.reader.phantom.image_size=128",
    ]
    runs = [
        subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for run in runs:
        _, errors = run.communicate(timeout=300)
        assert run.returncode == 0, errors[-3000:]
    runs = list((tmp_path / "check" / "runs").iterdir())
    assert len(runs) == 2 and all((run / "dataset_summary.json").is_file() for run in runs)
