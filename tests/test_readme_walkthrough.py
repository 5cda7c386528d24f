"""docs/own_data.md ("Retrain on your own data"), word for word: its bash blocks run in a temporary
folder that holds a checkout's entry points and configs, with only the python executable substituted."""

import csv
import json
import re
import subprocess
import sys

import pytest

from helpers.train_runs import REPO

PYTHON = ".venv/bin/python"
ENTRY_POINTS = ("train.py", "evaluate.py", "infer.py", "configs", "hydra_plugins")


def walkthrough_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", (REPO / "docs" / "own_data.md").read_text(), flags=re.S)


def run_blocks(folder, blocks) -> subprocess.CompletedProcess:
    script = "set -euo pipefail\n" + "".join(blocks).replace(PYTHON, sys.executable)
    done = subprocess.run(["bash", "-c", script], cwd=folder, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"{script}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


def is_evaluation(block: str) -> bool:
    return "evaluate.py" in block


def is_assignment(block: str) -> bool:
    return all(re.match(r"[A-Z_]+=", line) for line in block.strip().splitlines())


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    """Every step before the evaluation, in one shell (the variables carry over)."""
    folder = tmp_path_factory.mktemp("walkthrough")
    for entry in ENTRY_POINTS:
        (folder / entry).symlink_to(REPO / entry)
    blocks = walkthrough_blocks()
    assert len(blocks) == 6 and all(PYTHON in block for block in blocks if not is_assignment(block))
    run_blocks(folder, [block for block in blocks if not is_evaluation(block)])
    return folder, blocks


@pytest.mark.slow
def test_walkthrough_exports_checks_trains_and_sweeps(walked):
    folder, _ = walked
    assert sorted(p.name for p in (folder / "my_spines" / "annotations").iterdir()) == [
        "test.json",
        "train.json",
        "val.json",
    ]
    assert list((folder / "outputs" / "check" / "runs").glob("*/dataset_summary.json"))
    manifest = json.loads((folder / "outputs" / "my_spines" / "models" / "manifest.json").read_text())
    assert manifest["dataset"]["name"] == "coco" and list(manifest["components"]) == [
        "maskrcnn",
        "medsa",
        "point_predictor",
        "spine_end",
        "level_map",
    ]
    sweep = folder / "outputs" / "train_medsa" / "sweeps" / "medsa_coco"
    with open(sweep / "trials.csv", newline="") as stream:
        assert [row["status"] for row in csv.DictReader(stream)] == ["completed", "completed"]
    assert json.loads((sweep / "best.json").read_text())["monitor"] == "val/dice"


@pytest.mark.slow
def test_walkthrough_evaluates_the_trained_models(walked):
    folder, blocks = walked
    run_blocks(folder, [block for block in blocks if is_assignment(block) or is_evaluation(block)])
    summaries = list((folder / "outputs" / "evaluate_coco" / "runs").glob("*/summary.json"))
    assert len(summaries) == 1
    summary = json.loads(summaries[0].read_text())
    assert summary["run"]["checkpoints"] == "outputs/my_spines/models/manifest.json"
    assert summary["n_gt"] > 0 and 0 <= summary["identification_rate"] <= 1
