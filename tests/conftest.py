"""Tests use tiny models: one CPU thread per process is faster than two that fight for the cores,
and subprocesses (train.py runs) inherit the setting."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402  (after the environment is set for child processes)

torch.set_num_threads(1)
