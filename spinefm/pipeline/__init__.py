"""The inductive loop as a plain Python object: detector seeds, then a walk up and down the spine.

Names are imported on first use, so a process that only needs a submodule (an output writer reading
`types`) does not import torch with the loop.
"""

import importlib

_EXPORTS = {
    "ChainView": "decode",
    "DecodeConfig": "decode",
    "decode_chain": "decode",
    "LabelConfig": "labels",
    "InductiveLoop": "loop",
    "LoopConfig": "loop_config",
    "STOP_REASONS": "types",
    "Detection": "types",
    "Instance": "types",
    "LoopResult": "types",
    "MaskCrop": "types",
    "Step": "types",
    "Trace": "types",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
