"""Run train.py in a subprocess on tiny synthetic data, as a user would."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY_DATA = [
    "dataset.reader.num_images={train:8,val:4,test:0}",
    "dataset.reader.phantom.image_size=128",
    "callbacks.progress_bar=null",
]


def run_train(log_dir: Path, *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    command = [sys.executable, "train.py", f"paths.log_dir={log_dir}", *TINY_DATA, *overrides]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


def run_dirs(log_dir: Path, task: str) -> list[Path]:
    return sorted((log_dir / task / "runs").iterdir())


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def synthetic_dataset(train: int, val: int, image_size: int = 256) -> dict:
    """A plain `dataset` config of phantoms generated on the fly, for data modules built in-process."""
    return {
        "name": "synthetic",
        "root": None,
        "reader": {
            "_target_": "spinefm.synthetic.reader.synthetic_reader",
            "root": None,
            "num_images": {"train": train, "val": val, "test": 0},
            "seed": 0,
            "phantom": {"image_size": image_size},
        },
    }
