"""Run the inductive pipeline on films: label maps, instances JSON and overlays.

    python infer.py pipeline.checkpoints=outputs/train_all/runs/<time>/manifest.json input=films/ output=predictions/
    python infer.py pipeline.checkpoints=... input=list.txt output=... pipeline.view=lateral_cervical pipeline.device=cpu
"""

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from spinefm.pipeline.components import load_loop, read_manifest
from spinefm.pipeline.run_folder import RunSettings, format_summary, run_inputs


def _without_nulls(settings: dict) -> dict:
    """Null settings are left to `load_loop`, which takes them from the checkpoints."""
    return {k: _without_nulls(v) if isinstance(v, dict) else v for k, v in settings.items() if v is not None}


@hydra.main(config_path="configs", config_name="infer", version_base="1.3")
def main(cfg: DictConfig) -> None:
    pipeline = cfg.pipeline
    device = ("cuda" if torch.cuda.is_available() else "cpu") if pipeline.device == "auto" else pipeline.device
    loop_config = _without_nulls(OmegaConf.to_container(pipeline.loop, resolve=True))
    components = _without_nulls(OmegaConf.to_container(pipeline.components, resolve=True))
    loop = load_loop(pipeline.checkpoints, loop_config, device, pipeline.which, components)
    view = pipeline.view or (read_manifest(pipeline.checkpoints).get("dataset") or {}).get("view")
    settings = RunSettings(
        min_side=cfg.min_side,
        max_pixels=cfg.max_pixels,
        auto_invert=cfg.auto_invert,
        overwrite=cfg.overwrite,
        progress_bar=cfg.progress_bar,
        overlay=OmegaConf.to_container(cfg.overlay, resolve=True),
    )
    print(format_summary(run_inputs(loop, cfg.input, cfg.output, view, settings)))


if __name__ == "__main__":
    main()
