"""What every adapter shares: its model, settings from the checkpoint, batches, the device."""

from __future__ import annotations

import functools
from typing import ClassVar

import numpy as np
import torch

from spinefm.checkpoints import load_component


class Adapter:
    """A trained model behind a role. role: one of `roles.ROLES`; settings: the checkpoint's
    `inference` entries the constructor takes; info: the checkpoint's `spinefm` entry ({} if built directly)."""

    role: ClassVar[str]
    settings: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model):
        self.model = model.eval()
        self.info: dict = {}

    @classmethod
    def from_checkpoint(cls, path, device: str = "cpu", model_overrides: dict | None = None, **overrides) -> Adapter:
        return cls.from_loaded(*load_component(path, model_overrides), device, **overrides)

    @classmethod
    def from_loaded(cls, model, info: dict, device: str = "cpu", **overrides) -> Adapter:
        """The adapter on a model and its checkpoint's `spinefm` entry (`checkpoints.load_component`)."""
        if info["role"] != cls.role:
            raise ValueError(
                f"a {info['component']} checkpoint serves the {info['role']} role, "
                f"but {cls.__name__} the {cls.role} role"
            )
        settings = {key: info["inference"][key] for key in cls.settings if key in info["inference"]}
        adapter = cls(model.to(device), **{**settings, **overrides})
        adapter.info = info
        return adapter

    @torch.inference_mode()
    def batched(self, patches: np.ndarray, size: int, forward, shape: tuple[int, ...]) -> np.ndarray:
        """`forward` on uint8 patches (N, S, S), `size` at a time, each batch a float tensor (B, 1, S, S) in
        [0, 1] on the model's device; its numpy outputs (B, *shape) concatenated."""
        outputs = [np.zeros((0, *shape), np.float32)]
        for start in range(0, len(patches), size):
            outputs.append(
                forward(torch.from_numpy(patches[start : start + size]).to(self.device).float().div_(255.0)[:, None])
            )
        return np.concatenate(outputs)

    def networks(self) -> list[torch.nn.Module]:
        """The modules whose forward is this adapter's network work, one call per batch (what
        benchmarks time and count): the model, unless an adapter runs it otherwise."""
        return [self.model] if isinstance(self.model, torch.nn.Module) else []

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are (the CPU for a model without any)."""
        parameters = self.model.parameters() if isinstance(self.model, torch.nn.Module) else iter(())
        return next((p.device for p in parameters), torch.device("cpu"))


def full_precision(method):
    """Run `method` with autocast off, so coordinates stay float32 under a mixed-precision run."""

    @functools.wraps(method)
    def wrapped(self, *args, **kwargs):
        with torch.autocast(self.device.type, enabled=False):
            return method(self, *args, **kwargs)

    return wrapped
