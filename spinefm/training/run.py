"""Train one stage from a composed config, or all of them in sequence with a checkpoint manifest."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
import torch
from hydra.utils import get_object, instantiate
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from spinefm.io_utils import atomic_write_json
from spinefm.training.precision import effective_precision

log = logging.getLogger(__name__)


def dataset_identity(dataset_cfg) -> dict:
    """What a checkpoint remembers of the data it was trained on."""
    return {key: dataset_cfg.get(key) for key in ("name", "view", "first_level", "last_level")}


def train_stage(cfg: DictConfig, output_dir: Path) -> dict:
    """Fit `cfg.stage` on `cfg.dataset`; writes the resolved config, returns (and writes as metrics.json)
    what came out."""
    if rank_zero_only.rank == 0:  # under DDP every rank trains; one writes
        output_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, output_dir / "config.yaml", resolve=True)  # .hydra/config.yaml keeps the interpolations
    L.seed_everything(cfg.seed, workers=True)
    stage = cfg.stage
    datamodule, module = build_stage(cfg)
    callbacks = {name: instantiate(c) for name, c in (cfg.get("callbacks") or {}).items() if c is not None}
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=list(callbacks.values()),
        logger=loggers or False,
        default_root_dir=str(output_dir),
        precision=effective_precision(cfg.trainer.precision, cfg.trainer.accelerator),
    )
    started = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    finally:
        if any(isinstance(logger, WandbLogger) for logger in loggers):
            import wandb

            wandb.finish()  # else the next stage, or sweep trial, of this process logs into this run
    best, last = callbacks.get("model_checkpoint"), callbacks.get("last_checkpoint")
    result = {
        "stage": stage.name,
        "dataset": cfg.dataset.name,
        "monitor": stage.monitor,
        "best_checkpoint": (best.best_model_path or None) if best else None,
        "last_checkpoint": (last.best_model_path or None) if last else None,
        "best_value": _number(best.best_model_score) if best else None,
        "metrics": {k: _number(v) for k, v in trainer.callback_metrics.items()},
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "precision": trainer.precision,
        "world_size": trainer.world_size,
        "seconds": round(time.perf_counter() - started, 1),
        "skipped_images": datamodule.skipped,
    }
    if trainer.is_global_zero:
        atomic_write_json(output_dir / "metrics.json", result)
        log.info("%s: best %s = %s (%s)", stage.name, stage.monitor, result["best_value"], result["best_checkpoint"])
    return result


def train_all(cfg: DictConfig, output_dir: Path) -> dict:
    """Train every stage in `cfg.stages` in order, each in its own sub-folder; write manifest.json."""
    components = {}
    for name in cfg.stages:
        stage_dir = output_dir / name
        result = train_stage(stage_config(cfg, name, stage_dir), stage_dir)
        components[name] = {
            k: result[k] for k in ("best_checkpoint", "last_checkpoint", "monitor", "best_value", "seconds")
        }
    manifest = {"dataset": dataset_identity(cfg.dataset), "components": components}
    if rank_zero_only.rank == 0:  # under DDP every rank trains; one writes
        atomic_write_json(output_dir / "manifest.json", manifest)
    return manifest


def build_stage(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule]:
    """`cfg.stage`'s data module and module, with the run's float32 matmul precision (`high`: TF32
    on GPUs that have it) and memory format (`channels_last`: NHWC convolution weights; a stage
    config may set its own)."""
    torch.set_float32_matmul_precision(cfg.get("matmul_precision") or "highest")
    datamodule = build_shallow(cfg.stage.data, dataset=plain(cfg.dataset), seed=cfg.seed)
    module = build_shallow(cfg.stage.module, dataset=dataset_identity(cfg.dataset))
    if cfg.stage.get("channels_last", cfg.get("channels_last")):
        module = module.to(memory_format=torch.channels_last)
    return datamodule, module


def build_shallow(node, **extra):
    """Call `node._target_` with plain-dict arguments; nested `_target_`s (the dataset's reader,
    the optimiser) stay configs for their owners to build, and checkpoints store plain values."""
    kwargs = plain(node)
    return get_object(kwargs.pop("_target_"))(**kwargs, **extra)


def plain(node) -> dict:
    """A resolved plain-dict copy of a config node (what checkpoints may store)."""
    return OmegaConf.to_container(node, resolve=True)


def stage_config(cfg: DictConfig, name: str, output_dir: Path) -> DictConfig:
    """The single-stage config that train_all runs for `cfg.stages[name]`."""
    stage_cfg = cfg.copy()
    with open_dict(stage_cfg):
        stage_cfg.stage = cfg.stages[name]
        stage_cfg.paths.output_dir = str(output_dir)
        del stage_cfg["stages"]
    return stage_cfg


def _number(value):
    if value is None:
        return None
    return float(value.item() if hasattr(value, "item") else value)
