"""The table of a sweep's trials (parameters -> the stage's validation metric) and its best trial.

A Hydra callback for every multirun, grid (`-m a=1,2`) or Optuna (`hparams_search=...`). After each
job it writes the job's outcome to <job>/trial.json and rewrites <sweep>/trials.csv and
<sweep>/best.json from all the job folders, so the table is complete after a failed job or an
interruption too, and covers every start of a resumed sweep. It also names the wandb group of the
sweep's runs after the sweep folder (WANDB_RUN_GROUP, unless already set).
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from spinefm.io_utils import atomic_write_csv, atomic_write_json

log = logging.getLogger(__name__)


class SweepTable(Callback):
    def __init__(self, table: str = "trials.csv", best: str = "best.json", record: str = "trial.json") -> None:
        self.table, self.best, self.record = table, best, record
        self.swept: list[str] | None = None  # the swept keys; None: every override of a job

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self.swept = swept_keys(config)
        os.environ.setdefault("WANDB_RUN_GROUP", Path(config.hydra.sweep.dir).name)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:  # a single run, or a DDP child process
            return
        failed = job_return.status != JobStatus.COMPLETED
        outcome = job_return._return_value  # the task's return value or its exception (.return_value raises it)
        if failed:
            log.error("job %s failed", config.hydra.job.num, exc_info=outcome)  # into the job's log too
        record = {
            "status": "failed" if failed else "completed",
            "monitor": OmegaConf.select(config, "stage.monitor"),
            "mode": OmegaConf.select(config, "stage.mode"),
            "value": None if failed else _number(outcome),
            "error": " ".join(f"{type(outcome).__name__}: {outcome}".split()) if failed else None,  # one line
        }
        atomic_write_json(Path(config.hydra.runtime.output_dir) / self.record, record)
        self.write(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        best = self.write(sweep_dir)
        if best:
            params = " ".join(f"{k}={v}" for k, v in best["params"].items())
            print(
                f"best of {best['completed']} completed trials: job {best['job']}, "
                f"{best['monitor']} = {best['value']}  {params}"
            )
            print(f"  {best['run_dir']}  (table: {sweep_dir / self.table})")

    def write(self, sweep_dir: Path) -> dict | None:
        """Rewrite the table and best.json from the job folders; return the best trial (None: none completed)."""
        if not sweep_dir.is_dir():  # no job was launched
            return None
        jobs = sorted((p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
        unfinished = {"status": "unfinished"}  # interrupted, or still running
        trials = [
            {"job": job.name, "params": self._params(job), **(_read_json(job / self.record) or unfinished)}
            for job in jobs
        ]
        monitor = next((t["monitor"] for t in trials if t.get("monitor")), None) or "value"
        keys = list(dict.fromkeys(key for t in trials for key in t["params"]))
        rows = [
            {"job": t["job"], "status": t["status"], **t["params"], monitor: t.get("value"), "error": t.get("error")}
            for t in trials
        ]
        atomic_write_csv(sweep_dir / self.table, rows, ["job", "status", *keys, monitor, "error"])
        completed = [t for t in trials if t.get("value") is not None]
        if not completed:
            return None
        top = (max if completed[0]["mode"] == "max" else min)(completed, key=lambda t: t["value"])
        best = {
            "job": top["job"],
            "run_dir": str((sweep_dir / top["job"]).resolve()),
            "monitor": monitor,
            "mode": top["mode"],
            "value": top["value"],
            "params": top["params"],
            "best_checkpoint": (_read_json(sweep_dir / top["job"] / "metrics.json") or {}).get("best_checkpoint"),
            "completed": len(completed),
            "trials": len(trials),
        }
        atomic_write_json(sweep_dir / self.best, best)
        return best

    def _params(self, job_dir: Path) -> dict:
        overrides = (
            OmegaConf.load(job_dir / ".hydra" / "overrides.yaml")
            if (job_dir / ".hydra" / "overrides.yaml").is_file()
            else []
        )
        values = {
            o.get_key_element(): o.get_value_element_as_str()
            for o in OverridesParser.create().parse_overrides(list(overrides))
        }
        return values if self.swept is None else {k: values.get(k) for k in self.swept}


def swept_keys(config: DictConfig) -> list[str]:
    """The keys a multirun varies: the sweeper's `params` and the sweeps on its command line."""
    keys = list(OmegaConf.select(config, "hydra.sweeper.params") or {})
    for override in OverridesParser.create().parse_overrides(list(config.hydra.overrides.task)):
        if override.is_sweep_override() and override.get_key_element() not in keys:
            keys.append(override.get_key_element())
    return keys


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None
