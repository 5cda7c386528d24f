"""Run the inductive pipeline on films: label maps, instances JSON and overlays.

    python infer.py input=films/ output=predictions/        (checkpoints: the newest train_all manifest)
    python infer.py pipeline.checkpoints=outputs/train_all/runs/<time>/manifest.json input=list.txt output=...
    python infer.py ... trainer.devices=4 trainer.strategy=ddp trainer.precision=bf16-mixed
"""

import hydra
from omegaconf import DictConfig

from spinefm.pipeline.from_config import loop_from_config, predict_options
from spinefm.pipeline.predict import format_summary, predict_folder


@hydra.main(config_path="configs", config_name="infer", version_base="1.3")
def main(cfg: DictConfig) -> None:
    loop, view, manifest = loop_from_config(cfg)
    print(f"checkpoints: {manifest['path']}")
    summary = predict_folder(loop, cfg.input, cfg.output, view=view, **predict_options(cfg))
    if summary is not None:  # global rank 0
        print(format_summary(summary))


if __name__ == "__main__":
    main()
