"""An evaluation's figures, tables and pictures as one wandb run (offline by default: `wandb sync` uploads it)."""

from __future__ import annotations

import csv
from pathlib import Path


def flatten(summary: dict, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested summary as {"a/b/c": value}."""
    flat = {}
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= flatten(value, f"{name}/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:  # not NaN
            flat[name] = value
    return flat


def log_to_wandb(summary: dict, output_dir, settings) -> Path:
    """Logs the headline figures (run summary), the CSV tables and the pictures; returns the run folder."""
    import wandb

    output_dir = Path(output_dir)
    figures = flatten({k: v for k, v in summary.items() if k not in ("config", "run")})
    run = wandb.init(
        project=settings.project,
        group=settings.group,
        name=output_dir.name,
        job_type="evaluate",
        dir=str(output_dir),
        mode="offline" if settings.offline else "online",
        config={"run": summary["run"], **summary["config"]},
    )
    run.summary.update(figures)
    for table in ("per_image", "per_level", "clinical"):
        with open(output_dir / f"{table}.csv", newline="") as stream:
            rows = list(csv.reader(stream))
        if rows:
            run.log({table: wandb.Table(columns=rows[0], data=rows[1:])})
    pictures = sorted(output_dir.glob("*.png")) + sorted((output_dir / "worst").glob("**/*.png"))
    run.log({f"pictures/{p.relative_to(output_dir).with_suffix('').as_posix()}": wandb.Image(str(p)) for p in pictures})
    folder = Path(run.dir).parent
    run.finish()
    return folder
