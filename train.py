"""Entry point: training the four components (python train.py stage=<maskrcnn|medsa|point_predictor|spine_end> dataset=NAME)."""

from spinefm.cli_pending import not_yet

if __name__ == "__main__":
    not_yet("train.py", "training the four components")
