"""infer.py runs on tiny trained components, with settings that make them walk."""

import json
import subprocess
import sys

from helpers.train_runs import REPO

# Thresholds at 0 and no overlap stop make the tiny models walk (as in test_pipeline_components).
LOOP = {"mask_threshold": 0, "final_threshold": 0, "overlap_iou": 1, "max_steps": 3, "duplicate_iou": 1}
COMPONENTS = {"maskrcnn": {"score_threshold": 0, "mask_threshold": 0.5}}
WALKING = [f"pipeline.loop.{key}={value}" for key, value in LOOP.items()] + [
    f"pipeline.components.{name}.{key}={value}"
    for name, settings in COMPONENTS.items()
    for key, value in settings.items()
]

SIZES = ["min_side=40", "max_pixels=20000"]  # phantoms are 128 px high, 49 to 60 px wide


def infer(manifest, source, output, log_dir, *extra, status=0):
    """The summary of an infer.py run, which exits with `status` (1: some film failed)."""
    command = [
        sys.executable,
        "infer.py",
        f"pipeline.checkpoints={manifest}",
        f"input={source}",
        f"output={output}",
        f"paths.log_dir={log_dir}",
        "progress_bar=false",
        *SIZES,
        *WALKING,
        *extra,
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == status, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return json.loads((output / "summary.json").read_text())
