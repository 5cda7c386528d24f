"""What every stage's LightningModule shares: model from config, optimiser, checkpoint metadata."""

from __future__ import annotations

import lightning as L
from hydra.utils import instantiate

from spinefm.checkpoints import FORMAT_VERSION, IDENTITY, build_model, with_identity


class ComponentModule(L.LightningModule):
    """Builds `self.model` from plain constructor arguments and records them in every checkpoint.

    optimizer / scheduler are Hydra-style dicts (`_target_` plus arguments, the parameters and the
    optimiser are filled in here); `inference` and `dataset` are stored for the pipeline.
    """

    component: str = ""  # the stage's name, as checkpoints record it
    role: str = ""  # a pipeline role (`spinefm.pipeline.roles.ROLES`) ...
    adapter: str = ""  # ... served by this adapter ...
    builder: str = ""  # ... on the model this "module:callable" builds; the three default to LEGACY[component]

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
        self.model = build_model(self.identity["builder"], model)

    @property
    def identity(self) -> dict:
        own = {key: getattr(self, key) for key in IDENTITY if getattr(self, key)}
        info = with_identity({"component": self.component, **own})
        return {key: info[key] for key in IDENTITY}

    def configure_optimizers(self):
        parameters = [p for p in self.parameters() if p.requires_grad]
        # A null argument means the optimiser's own default, so a config can switch SGD -> Adam.
        arguments = {k: v for k, v in self.hparams.optimizer.items() if v is not None}
        optimizer = instantiate(arguments, params=parameters)
        if not self.hparams.scheduler:
            return optimizer
        scheduler = dict(self.hparams.scheduler)
        interval = scheduler.pop("interval", "epoch")
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": instantiate(scheduler, optimizer=optimizer), "interval": interval},
        }

    def checkpoint_metadata(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "component": self.component,
            **self.identity,
            "model": dict(self.hparams.model),
            "inference": dict(self.hparams.inference or {}),
            "dataset": dict(self.hparams.dataset or {}),
            "trainable_only": False,
        }

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["spinefm"] = self.checkpoint_metadata()
