"""Med-SA (Medical SAM Adapter): SAM-family segmenters with bottleneck adapters in the image encoder."""

from spinefm.models.medsa.adapter import AdapterLayer
from spinefm.models.medsa.backbones import BACKBONES
from spinefm.models.medsa.model import MedSA

__all__ = ["BACKBONES", "AdapterLayer", "MedSA"]
