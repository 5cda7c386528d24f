"""SpineFM's released weights (NHANES II, CSXA) as this framework's checkpoints:
`python -m spinefm.original WEIGHTS_DIR --dataset nhanes|csxa --out DIR` (`convert`)."""
