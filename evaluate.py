"""Evaluate the pipeline on a dataset's test split: SpineFM's metrics and the ones it never counted.

    python evaluate.py dataset=synthetic                       (checkpoints: the newest train_all manifest)
    python evaluate.py dataset=aasce pipeline.checkpoints=outputs/train_all/runs/<time>/manifest.json
    python evaluate.py dataset=nhanes predictions=outputs/infer/predictions   (score an infer.py folder)

Exit status (spinefm.cli): 0 done, 1 a film failed or was unreadable (0 with allow_failures=true),
2 a user error, 130 / 143 stopped by SIGINT / SIGTERM (no report; the predictions made are kept).
"""

import hydra
from omegaconf import DictConfig

from spinefm.cli import entry_point, exit_if_failed


@hydra.main(config_path="configs", config_name="evaluate", version_base="1.3")
@entry_point(stoppable=True)
def main(cfg: DictConfig) -> None:
    # Imported here: each output writer process (spawned) imports this file, and needs no torch.
    from spinefm.evaluation.run import evaluate, format_report
    from spinefm.evaluation.tracking import log_to_wandb

    summary = evaluate(cfg)
    if summary is None:  # not global rank 0
        return
    print(format_report(summary))
    print(f"report: {cfg.paths.output_dir}")
    if cfg.wandb.enabled:
        log_to_wandb(summary, cfg.paths.output_dir, cfg.wandb)
    exit_if_failed(summary["run"]["failed"], cfg.allow_failures)


if __name__ == "__main__":
    main()
