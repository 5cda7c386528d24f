"""A torch module that runs an ONNX export of itself on the CPU."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import torch
from torch import nn

from spinefm.runtime.cache import cached_export, discard, fingerprint
from spinefm.runtime.sessions import open_session, require_runtime

log = logging.getLogger(__name__)


class CpuRuntimeModule(nn.Module):
    """`module` (one tensor in, one out) run by a CPU runtime on CPU tensors outside autograd.

    On a GPU, in training mode, where a gradient is wanted or under autocast (a run that asked for
    lower precision), `module` itself runs, so the wrapper can stay in place whatever device
    Lightning moves it to. The export is made on the first CPU call for
    each input shape (one item: a batch runs item by item, as batches do not pay on a CPU, `streams`
    items side by side) and cached (`spinefm.runtime.cache`); identity: plain settings of the module
    that are not in its tensors.
    """

    def __init__(self, module: nn.Module, runtime: str, identity: object = None, streams: int = 1):
        super().__init__()
        require_runtime(runtime)
        self.module = module
        self.runtime = runtime
        self.identity = identity
        self.streams = streams
        self._sessions: dict[tuple[int, ...], object] = {}

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if (
            inputs.device.type != "cpu"
            or self.module.training
            or (torch.is_grad_enabled() and inputs.requires_grad)
            or torch.is_autocast_enabled("cpu")
        ):
            return self.module(inputs)
        run = self._session(tuple(inputs.shape[1:]))
        if not len(inputs):
            return self.module(inputs)
        if run is None:  # in torch, item by item as the export would have run them
            return torch.cat([self.module(item) for item in inputs.split(1)])
        items = np.ascontiguousarray(inputs.detach().float().numpy())
        return torch.from_numpy(np.concatenate(run([items[i : i + 1] for i in range(len(items))])))

    def _session(self, shape: tuple[int, ...]):
        """The runtime's session for items of `shape`; None where the module could not be exported
        (it then runs in torch: slower, but the run goes on)."""
        if shape not in self._sessions:
            try:
                self._sessions[shape] = self._open(shape)
            except Exception as error:
                warnings.warn(
                    f"{type(self.module).__name__} could not be run by {self.runtime} "
                    f"({type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}); it runs in torch",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self._sessions[shape] = None
        return self._sessions[shape]

    def _open(self, shape: tuple[int, ...]):
        example = torch.zeros((1, *shape))
        key = fingerprint(self.module, (1, *shape), self.identity)
        path = cached_export(self.module, example, key)
        threads = torch.get_num_threads()
        try:
            return open_session(path, self.runtime, threads, self.streams)
        except Exception as error:  # a damaged cache entry: export again, once
            log.warning("the cached export %s did not load (%s); exporting it again", path, error)
            discard(path)
            return open_session(cached_export(self.module, example, key), self.runtime, threads, self.streams)
