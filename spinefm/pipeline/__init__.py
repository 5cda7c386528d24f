"""The inductive loop as a plain Python object: detector seeds, then a walk up and down the spine."""

from spinefm.pipeline.decode import ChainView, DecodeConfig, decode_chain
from spinefm.pipeline.labels import LabelConfig
from spinefm.pipeline.loop import InductiveLoop, LoopConfig
from spinefm.pipeline.types import STOP_REASONS, Detection, Instance, LoopResult, MaskCrop, Step, Trace

__all__ = [
    "STOP_REASONS",
    "ChainView",
    "DecodeConfig",
    "Detection",
    "InductiveLoop",
    "Instance",
    "LabelConfig",
    "LoopConfig",
    "LoopResult",
    "MaskCrop",
    "Step",
    "Trace",
    "decode_chain",
]
