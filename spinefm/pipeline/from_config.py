"""The loop `infer.py` and `evaluate.py` build from their `pipeline` config (configs/pipeline/default.yaml)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from spinefm.pipeline.components import find_manifest, load_loop, read_manifest
from spinefm.pipeline.loop import InductiveLoop


def without_nulls(settings: dict) -> dict:
    """Null settings are left to `load_loop`, which takes them from the checkpoints."""
    return {k: without_nulls(v) if isinstance(v, dict) else v for k, v in settings.items() if v is not None}


def loop_from_config(cfg: DictConfig) -> tuple[InductiveLoop, str | None, dict]:
    """(the loop on the CPU, the view for films without one, the manifest) from `cfg.pipeline`;
    `pipeline.checkpoints=latest` is the newest manifest under `paths.log_dir`."""
    pipeline = cfg.pipeline
    path = find_manifest(pipeline.checkpoints, cfg.paths.log_dir)
    manifest = read_manifest(path)
    manifest["path"] = str(path)
    loop_config = without_nulls(OmegaConf.to_container(pipeline.loop, resolve=True))
    components = without_nulls(OmegaConf.to_container(pipeline.components, resolve=True))
    loop = load_loop(manifest, loop_config, "cpu", pipeline.which, components)
    view = pipeline.view or (manifest.get("dataset") or {}).get("view")
    return loop, view, manifest
