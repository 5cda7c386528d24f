"""DDP inside a Hydra multirun (`python train.py -m ...`): one job's processes, one job's folder."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import read_write


@contextmanager
def ddp_in_a_sweep():
    """Lightning starts the other DDP processes by running the command line again with
    hydra.run.dir=<run.dir> (lightning/fabric/strategies/launchers/subprocess_script.py) and leaves its
    process group and variables (LOCAL_RANK, MASTER_PORT, ...) behind. In a sweep, make that command a
    run of this job alone, in this job's folder, and clear both afterwards for the next job's processes."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        yield
        return
    config_dirs = [
        f"--config-dir={source.path}"
        for source in hydra_cfg.runtime.config_sources
        if source.provider == "command-line"
    ]
    sys.argv = [sys.argv[0], f"--config-name={hydra_cfg.job.config_name}", *config_dirs, *hydra_cfg.overrides.task]
    with read_write(hydra_cfg.run):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
    environment = dict(os.environ)
    try:
        yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        os.environ.clear()
        os.environ.update(environment)
