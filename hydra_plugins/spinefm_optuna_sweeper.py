"""Hydra takes sweepers only from the `hydra_plugins` package: this is the Optuna sweeper whose study
resumes (spinefm/training/optuna_sweep.py), selected by configs/hparams_search/optuna.yaml."""

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper


class ResumableOptunaSweeper(OptunaSweeper):
    def __init__(self, **settings) -> None:
        from spinefm.training.optuna_sweep import ResumableSweeperImpl  # optuna loads only when a sweep runs

        self.sweeper = ResumableSweeperImpl(**settings)
