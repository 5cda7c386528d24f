"""A torch module that runs an ONNX export of itself on the CPU."""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from spinefm.runtime.cache import cached_export, discard, fingerprint
from spinefm.runtime.sessions import open_session, require_runtime

log = logging.getLogger(__name__)


class CpuRuntimeModule(nn.Module):
    """`module` (one tensor in, one out) run by a CPU runtime on CPU tensors outside autograd.

    On a GPU, in training mode or where a gradient is wanted, `module` itself runs, so the wrapper can
    stay in place whatever device Lightning moves it to. The export is made on the first CPU call for
    each input shape (one item: a batch runs item by item, as batches do not pay on a CPU) and cached
    (`spinefm.runtime.cache`); identity: plain settings of the module that are not in its tensors.
    """

    def __init__(self, module: nn.Module, runtime: str, identity: object = None):
        super().__init__()
        require_runtime(runtime)
        self.module = module
        self.runtime = runtime
        self.identity = identity
        self._sessions: dict[tuple[int, ...], object] = {}

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.device.type != "cpu" or self.module.training or (torch.is_grad_enabled() and inputs.requires_grad):
            return self.module(inputs)
        items = inputs.detach().float()
        run = self._session(tuple(items.shape[1:]))
        outputs = [run(np.ascontiguousarray(item[None].numpy())) for item in items]
        return torch.from_numpy(np.concatenate(outputs)) if outputs else self.module(inputs)

    def _session(self, shape: tuple[int, ...]):
        if shape not in self._sessions:
            example = torch.zeros((1, *shape))
            key = fingerprint(self.module, (1, *shape), self.identity)
            path = cached_export(self.module, example, key)
            threads = torch.get_num_threads()
            try:
                self._sessions[shape] = open_session(path, self.runtime, threads)
            except Exception as error:  # a damaged cache entry: export again, once
                log.warning("the cached export %s did not load (%s); exporting it again", path, error)
                discard(path)
                self._sessions[shape] = open_session(cached_export(self.module, example, key), self.runtime, threads)
        return self._sessions[shape]
