"""Exit status of the entry points: 1 when films failed (some failed, with and without
allow_failures: test_infer), 2 and one line for a user's mistake, checked before any checkpoint
loads; train.py --help without a stage."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

from helpers.infer_runs import infer
from helpers.train_runs import REPO
from spinefm.cli import UserError, entry_point
from spinefm.data.image_io import IMAGE_SUFFIXES


def run(script, *overrides):
    return subprocess.run([sys.executable, script, *overrides], cwd=REPO, capture_output=True, text=True, timeout=300)


def one_error_line(done) -> str:
    """The error line, after asserting it is the only one and there is no traceback (import warnings may precede it)."""
    assert done.returncode == 2, f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr and [line for line in lines if line.startswith("error:")] == lines[-1:], (
        done.stderr
    )
    return lines[-1]


def raised_by_a_target(cause: Exception) -> InstantiationException:
    """As Hydra's `instantiate` wraps what a config's `_target_` raised."""
    error = InstantiationException("Error in call to target 'Reader'")
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    "error, line",
    [
        (FileNotFoundError("checkpoint manifest m.json not found"), "error: checkpoint manifest m.json not found"),
        (UserError("no stage"), "error: no stage"),
        (None, "error: input is required: add input=..."),  # a mandatory value left out (???)
        (
            raised_by_a_target(FileNotFoundError("dataset root /x is not a folder")),
            "error: dataset root /x is not a folder",
        ),
    ],
)
def test_a_user_error_is_one_line_and_status_2_and_the_traceback_needs_hydra_full_error(
    error, line, capsys, monkeypatch
):
    @entry_point(stoppable=True)
    def task(cfg):
        if error is None:
            return cfg.input
        raise error

    cfg = OmegaConf.create({"input": "???"})
    with pytest.raises(SystemExit) as ended:
        task(cfg)
    assert ended.value.code == 2 and capsys.readouterr().err == line + "\n"
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(Exception, match="no stage|not found|input|Reader"):
        task(cfg)


@pytest.mark.parametrize("error", [ValueError("a bug"), raised_by_a_target(ValueError("a bug"))])
def test_other_errors_are_not_taken_for_a_users(error, capsys):
    @entry_point()
    def task(cfg):
        raise error

    with pytest.raises(type(error)):
        task(None)
    assert capsys.readouterr().err == ""


def test_a_folder_without_images_is_one_line_naming_it_and_the_suffixes_before_checkpoints_load(tmp_path):
    (tmp_path / "films").mkdir()
    (tmp_path / "films" / "notes.txt").write_text("not a film")
    line = one_error_line(
        run(
            "infer.py",
            f"input={tmp_path / 'films'}",
            f"output={tmp_path / 'out'}",
            f"pipeline.checkpoints={tmp_path / 'no' / 'manifest.json'}",
            f"paths.log_dir={tmp_path / 'logs'}",
        )
    )
    assert str(tmp_path / "films") in line and all(suffix in line for suffix in IMAGE_SUFFIXES)


@pytest.mark.parametrize("script", ["infer.py", "evaluate.py"])
def test_a_bad_checkpoint_or_manifest_is_one_line_naming_it(tmp_path, script):
    """infer.py: a checkpoint cut short; evaluate.py: a manifest listing paths where objects belong."""
    checkpoint = tmp_path / "maskrcnn.ckpt"
    torch.save({"state_dict": {"model.weight": torch.zeros(64)}, "spinefm": {"component": "maskrcnn"}}, checkpoint)
    manifest = tmp_path / "manifest.json"
    if script == "infer.py":
        checkpoint.write_bytes(checkpoint.read_bytes()[:500])
        manifest.write_text(json.dumps({"components": {"maskrcnn": {"best_checkpoint": str(checkpoint)}}}))
        (tmp_path / "films").mkdir()
        cv2.imwrite(str(tmp_path / "films" / "a.png"), np.zeros((64, 64), np.uint8))
        task = [f"input={tmp_path / 'films'}", f"output={tmp_path / 'out'}", f"paths.log_dir={tmp_path / 'logs'}"]
    else:
        manifest.write_text(json.dumps({"components": {"maskrcnn": str(checkpoint)}}))
        task = [
            f"hydra.run.dir={tmp_path / 'report'}",
            "dataset=synthetic",
            "dataset.reader.num_images={train:0,val:0,test:1}",
        ]
    line = one_error_line(run(script, f"pipeline.checkpoints={manifest}", *task))
    named = checkpoint if script == "infer.py" else manifest
    assert line.startswith((f"error: checkpoint {named} cannot be read", f"error: checkpoint manifest {named}: "))


def test_every_film_failed_exits_1(manifest, tmp_path):
    films = tmp_path / "films"
    films.mkdir()
    (films / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (films / "empty.png").write_bytes(b"")
    summary = infer(manifest, films, tmp_path / "out", tmp_path / "logs", status=1)
    assert summary["processed"] == [] and [f["id"] for f in summary["failed"]] == ["corrupt", "empty"]


def test_evaluate_exits_1_when_films_failed(manifest, tmp_path):
    done = run(
        "evaluate.py",
        f"hydra.run.dir={tmp_path}",
        f"pipeline.checkpoints={manifest}",
        "dataset=synthetic",
        "dataset.reader.num_images={train:0,val:0,test:2}",
        "dataset.reader.phantom.image_size=128",
        "min_side=200",
        "progress_bar=false",
        "num_workers=0",
        "worst_films=0",
    )
    assert done.returncode == 1 and "error: films failed: 2" in done.stderr, done.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["run"]["failed"] == 2 and all(
        "too small" in f["reason"] for f in summary["run"]["inference"]["failed"]
    )


def test_train_help_needs_no_stage_and_train_without_one_is_one_line(tmp_path):
    helped = run("train.py", "--help")
    assert helped.returncode == 0 and "Traceback" not in helped.stderr, helped.stderr[-3000:]
    assert "stage: level_map, maskrcnn" in helped.stdout
    for script, required in (("train.py", "stage="), ("infer.py", "input="), ("evaluate.py", "dataset=")):
        usage = run(script, "--help").stdout
        first_line = usage.splitlines()[0]
        assert first_line.startswith(f"usage: python {script} ") and required in first_line and "Required:" in usage
    line = one_error_line(run("train.py", f"paths.log_dir={tmp_path}"))
    assert "stage=<level_map|maskrcnn|" in line and "experiment=train_all" in line
    assert not list(tmp_path.iterdir()), "no run folder for a run that cannot start"
