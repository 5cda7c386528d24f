"""Run the inductive pipeline on films: label maps, instances JSON and overlays.

    python infer.py input=films/ output=predictions/        (checkpoints: the newest train_all manifest)
    python infer.py pipeline.checkpoints=outputs/train_all/runs/<time>/manifest.json input=list.txt output=...
    python infer.py ... trainer.devices=4 trainer.strategy=ddp trainer.precision=bf16-mixed

Exit status (spinefm.cli): 0 done, 1 a film failed (0 with allow_failures=true), 2 a user error,
130 / 143 stopped by SIGINT / SIGTERM (the films done are kept; the same command again does the rest).
"""

import hydra
from omegaconf import DictConfig

from spinefm.cli import entry_point, exit_if_failed


@hydra.main(config_path="configs", config_name="infer", version_base="1.3")
@entry_point(stoppable=True)
def main(cfg: DictConfig) -> None:
    # Imported here: each output writer process (spawned) imports this file, and needs no torch;
    # and a wrong input is told before torch loads.
    from spinefm.pipeline.runner.inputs import find_inputs

    inputs = find_inputs(cfg.input, exclude=cfg.output)
    from spinefm.pipeline.runner.from_config import loop_from_config, predict_options
    from spinefm.pipeline.runner.predict import format_summary, predict_films

    loop, view, manifest = loop_from_config(cfg)
    print(f"checkpoints: {manifest['path']}")
    summary = predict_films(loop, inputs, cfg.output, source=str(cfg.input), view=view, **predict_options(cfg))
    if summary is not None:  # global rank 0
        print(format_summary(summary))
        exit_if_failed(len(summary["failed"]), cfg.allow_failures)


if __name__ == "__main__":
    main()
