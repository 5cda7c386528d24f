"""What every stage's LightningModule shares: model from config, optimiser, checkpoint metadata."""

from __future__ import annotations

from collections.abc import Mapping

import lightning as L
from hydra.utils import instantiate

from spinefm.checkpoints import FORMAT_VERSION, IDENTITY, build_model


class ComponentModule(L.LightningModule):
    """Builds `self.model` from plain constructor arguments and records them in every checkpoint.

    optimizer / scheduler are Hydra-style dicts (`_target_` plus arguments, the parameters and the
    optimiser are filled in here); `inference` and `dataset` are stored for the pipeline.
    """

    component: str = ""  # the stage's name, as checkpoints record it
    role: str = ""  # a pipeline role (`spinefm.pipeline.components.roles.ROLES`) ...
    adapter: str = ""  # ... served by this adapter ...
    builder: str = ""  # ... on the model this "module:callable" builds: every stage module names all four

    def __init__(
        self,
        model: dict,
        optimizer: dict,
        scheduler: dict | None = None,
        inference: dict | None = None,
        dataset: dict | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model(self.identity()["builder"], model)

    @classmethod
    def identity(cls) -> dict:
        """component, role, adapter and builder, as every checkpoint of the stage records them."""
        missing = [key for key in ("component", *IDENTITY) if not getattr(cls, key)]
        if missing:
            raise TypeError(f"{cls.__name__} must set {', '.join(missing)} (class attributes)")
        return {key: getattr(cls, key) for key in ("component", *IDENTITY)}

    def configure_optimizers(self):
        parameters = [p for p in self.parameters() if p.requires_grad]
        return build_optimizers(parameters, self.hparams.optimizer, self.hparams.scheduler)

    def checkpoint_metadata(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            **self.identity(),
            "model": dict(self.hparams.model),
            "inference": dict(self.hparams.inference or {}),
            "dataset": dict(self.hparams.dataset or {}),
            "trainable_only": False,
        }

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["spinefm"] = self.checkpoint_metadata()


def build_optimizers(parameters, optimizer: Mapping, scheduler: Mapping | None = None):
    """The optimiser (and scheduler, in Lightning's form) from Hydra-style dicts. A null argument
    means the class's own default, so a config can switch SGD -> Adam or StepLR -> cosine."""
    built = instantiate({k: v for k, v in optimizer.items() if v is not None}, params=parameters)
    if not scheduler:
        return built
    scheduler = {k: v for k, v in scheduler.items() if v is not None}
    interval = scheduler.pop("interval", "epoch")
    return {
        "optimizer": built,
        "lr_scheduler": {"scheduler": instantiate(scheduler, optimizer=built), "interval": interval},
    }
