"""Train one SpineFM component, or all of them.

python train.py stage=point_predictor dataset=aasce
python train.py experiment=train_all dataset=synthetic
python train.py stage=medsa ckpt_path=outputs/train_medsa/runs/<time>/checkpoints/last.ckpt   (resume)
python train.py -m hparams_search=medsa dataset=coco dataset.root=...                          (Optuna sweep)
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from spinefm.cli import entry_point


@hydra.main(config_path="configs", config_name="train", version_base="1.3")
@entry_point()
def main(cfg: DictConfig) -> float | None:
    """Returns the stage's best validation value: a sweep's objective (None for all the stages)."""
    # Imported here, so `--help` and a config error answer without loading torch.
    from spinefm.training.multirun import ddp_in_a_sweep
    from spinefm.training.run import train_all, train_stage

    output_dir = Path(cfg.paths.output_dir)
    with ddp_in_a_sweep():
        if cfg.get("stages"):
            manifest = train_all(cfg, output_dir)
            print(f"checkpoint manifest: {output_dir / 'manifest.json'}")
            for name, component in manifest["components"].items():
                print(
                    f"  {name:<16} {component['monitor']} = {component['best_value']}  {component['best_checkpoint']}"
                )
            return None
        result = train_stage(cfg, output_dir)
    print(f"{result['stage']}: best {result['monitor']} = {result['best_value']} -> {result['best_checkpoint']}")
    return result["best_value"]


if __name__ == "__main__":
    main()
