"""The adapters that put trained models behind the pipeline's roles (`types.Detector` ...).

Each adapter cuts its inputs exactly as its training stage did (same crops, resizes and uint8
film) and maps outputs back onto image pixels. Its settings come from the checkpoint's `inference`
entry (`settings`); keyword arguments override them. Segmenter and classifier cut the patches of
every request (numpy), then run ONE batched forward over all of them.

Each adapter runs on the device its model is on (move `adapter.model`, e.g. through a LightningModule
holding them). Under a mixed-precision autocast (`infer.py trainer.precision=bf16-mixed`) Med-SA and
the classifier run in bf16; the detector and the point predictor always run in float32, because
their outputs are pixel coordinates (bf16 keeps 8 bits: +-2 px at x = 1000).
"""

from spinefm.pipeline.components.adapters.base import Adapter
from spinefm.pipeline.components.adapters.level_map import LevelMapAdapter
from spinefm.pipeline.components.adapters.maskrcnn import MaskRCNNAdapter, to_original_grid
from spinefm.pipeline.components.adapters.medsa import MedSAAdapter
from spinefm.pipeline.components.adapters.point_predictor import PointPredictorAdapter
from spinefm.pipeline.components.adapters.spine_end import SpineEndAdapter

__all__ = [
    "Adapter",
    "LevelMapAdapter",
    "MaskRCNNAdapter",
    "MedSAAdapter",
    "PointPredictorAdapter",
    "SpineEndAdapter",
    "to_original_grid",
]
