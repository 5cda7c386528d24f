"""Train one SpineFM component, or all four.

    python train.py stage=point_predictor dataset=aasce
    python train.py experiment=train_all dataset=synthetic
    python train.py stage=medsa ckpt_path=outputs/train_medsa/runs/<time>/checkpoints/last.ckpt   (resume)
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from spinefm.training.run import train_all, train_stage


@hydra.main(config_path="configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    output_dir = Path(cfg.paths.output_dir)
    if cfg.get("stages"):
        manifest = train_all(cfg, output_dir)
        print(f"checkpoint manifest: {output_dir / 'manifest.json'}")
        for name, component in manifest["components"].items():
            print(f"  {name:<16} {component['monitor']} = {component['best_value']}  {component['best_checkpoint']}")
    else:
        result = train_stage(cfg, output_dir)
        print(f"{result['stage']}: best {result['monitor']} = {result['best_value']} -> {result['best_checkpoint']}")


if __name__ == "__main__":
    main()
