"""What the entry points that have not landed yet say instead of crashing."""

from __future__ import annotations

import sys

AVAILABLE_NOW = """Available now:
  python train.py stage=<maskrcnn|medsa|point_predictor|spine_end> dataset=NAME   train a component
  python train.py experiment=train_all dataset=NAME                               train all four (manifest.json)
  python infer.py pipeline.checkpoints=MANIFEST input=PATH output=DIR             segment and label films
  python -m spinefm.data.check dataset=aasce dataset.root=PATH   check a dataset (counts, problems)
  python -m spinefm.data.export dataset=synthetic out=DIR        write a synthetic dataset as COCO
  make demo                                                      both of the above on synthetic data"""


def not_yet(script: str, what: str) -> None:
    print(f"{script}: {what} is not implemented yet in this version of SpineFM-Lightning.\n\n{AVAILABLE_NOW}", file=sys.stderr)
    sys.exit(2)
