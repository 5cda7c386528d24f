"""The inductive pipeline, in rooms that follow the flow:

- `core/`: the loop itself (seeds, the walk up and down the spine, repairs, the chain decoder) and
  the types it passes, in numpy without torch; it asks its components through requests;
- `components/`: the trained models behind the loop's roles (an adapter per model family, their
  registry) and loading a manifest's checkpoints into a loop;
- `runner/`: many films through the loop under Lightning's `Trainer.predict` (inputs, loading,
  lockstep batches, writer processes);
- `io/`: what a run writes per film (label map and instances JSON, overlay picture);
- `tools/`: command-line tools on a predictions folder (`redecode`, `reclassify`).

The core's main names are importable from here, on first use (no torch with them).
"""

import importlib

_EXPORTS = {
    "ChainRecord": "core.decode",
    "ChainView": "core.decode",
    "DecodeConfig": "core.decode",
    "decode_chain": "core.decode",
    "LabelConfig": "core.labels",
    "InductiveLoop": "core.loop",
    "LoopConfig": "core.loop_config",
    "STOP_REASONS": "core.types",
    "Detection": "core.types",
    "Instance": "core.types",
    "LoopResult": "core.types",
    "MaskCrop": "core.types",
    "Step": "core.types",
    "Trace": "core.types",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
