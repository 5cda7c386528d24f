"""ONNX exports of torch modules, cached on disk by what determines them.

An export's key is a fingerprint of the module's weights and buffers, its class, an identity of
plain values (settings that live outside the tensors), the input shape and the torch version. A
retrained or edited checkpoint has other weights, so another key: a stale export is never used, and
the new one is made on first use. Each export is a folder `<cache>/onnx/<key>/` (the graph and, for
large models, its external weights), written elsewhere and renamed into place, so a crash or a
second process exporting at the same time never leaves a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

FORMAT = 1  # bump when the export's layout or options change
MODEL_FILE = "model.onnx"


def cache_root() -> Path:
    """SPINEFM_CACHE_DIR, else $XDG_CACHE_HOME/spinefm, else ~/.cache/spinefm."""
    if os.environ.get("SPINEFM_CACHE_DIR"):
        return Path(os.environ["SPINEFM_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spinefm"


def fingerprint(module: nn.Module, shape: tuple[int, ...], identity: object = None) -> str:
    """A key that changes whenever a weight, a buffer, the identity or the input shape does."""
    digest = hashlib.sha256()
    header = {
        "format": FORMAT,
        "class": f"{type(module).__module__}.{type(module).__qualname__}",
        "identity": identity,
        "shape": list(shape),
        "torch": torch.__version__,
    }
    digest.update(json.dumps(header, sort_keys=True, default=str).encode())
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        values = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{values.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(values.view(torch.uint8).numpy())
    return digest.hexdigest()[:32]


def cached_export(module: nn.Module, example: torch.Tensor, key: str) -> Path:
    """The path of `module`'s ONNX graph for inputs shaped like `example`, exported under `key` if missing."""
    folder = cache_root() / "onnx" / key
    if not (folder / MODEL_FILE).is_file():
        export(module, example, folder)
    return folder / MODEL_FILE


def export(module: nn.Module, example: torch.Tensor, folder: Path) -> None:
    """Export into a fresh folder beside `folder`, then rename it into place (a folder another process
    put there first is kept)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        with torch.inference_mode(False), torch.no_grad(), _exporter_quiet():
            program = torch.onnx.export(
                module, (example,), dynamo=True, input_names=["input"], output_names=["output"], verbose=False
            )
        program.save(str(temporary / MODEL_FILE), external_data=_needs_external_data(module))
        if folder.is_dir() and not (folder / MODEL_FILE).is_file():
            shutil.rmtree(folder)  # an entry without its graph (emptied by hand)
        try:
            os.replace(temporary, folder)
        except OSError:  # another process put its export there first
            if not (folder / MODEL_FILE).is_file():
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def discard(path: Path) -> None:
    """Remove the export that holds `path` (unreadable: it is made again on next use)."""
    shutil.rmtree(Path(path).parent, ignore_errors=True)


def _needs_external_data(module: nn.Module) -> bool:
    """Protobuf caps one file at 2 GB: larger weights go to a file of their own (SAM ViT-H)."""
    size = sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])
    return size > 1_500_000_000


@contextmanager
def _exporter_quiet():
    """The exporter's graph passes log each rewrite at INFO: hundreds of lines in a run's log for one ViT."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
