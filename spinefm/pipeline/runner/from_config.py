"""What `infer.py` and `evaluate.py` build from their configs: the loop (configs/pipeline/default.yaml)
and how it runs over films (configs/runner/default.yaml)."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from spinefm.pipeline.components.loading import load_named_loop
from spinefm.pipeline.core.loop import InductiveLoop
from spinefm.pipeline.runner.films import FilmSettings
from spinefm.progress_bar import progress_bar


def without_nulls(settings: dict) -> dict:
    """Null settings are left to `load_loop`, which takes them from the checkpoints."""
    return {k: without_nulls(v) if isinstance(v, dict) else v for k, v in settings.items() if v is not None}


def loop_from_config(cfg: DictConfig) -> tuple[InductiveLoop, str | None, dict]:
    """(the loop on the CPU, the view for films without one, the manifest) from `cfg.pipeline`;
    `pipeline.checkpoints=latest` is the newest manifest under `paths.log_dir`."""
    pipeline = cfg.pipeline
    loop_config = without_nulls(OmegaConf.to_container(pipeline.loop, resolve=True))
    components = without_nulls(OmegaConf.to_container(pipeline.components, resolve=True))
    return load_named_loop(
        pipeline.checkpoints, cfg.paths.log_dir, loop_config, "cpu", pipeline.which, components, pipeline.view
    )


def predict_options(cfg: DictConfig) -> dict:
    """`predict_films` keyword arguments from the runner settings (configs/runner/default.yaml)."""
    return {
        "trainer_factory": lambda callbacks: instantiate(
            cfg.trainer, callbacks=[*callbacks, *([progress_bar()] if cfg.progress_bar else [])]
        ),
        "settings": FilmSettings(cfg.min_side, cfg.max_pixels, cfg.auto_invert, cfg.overwrite),
        "films_per_batch": cfg.films_per_batch,
        "num_workers": cfg.num_workers,
        "writers": cfg.writers,
        "overlay": OmegaConf.to_container(cfg.overlay, resolve=True),
    }
