"""Timing helpers shared by the benchmarks."""

import torch


def synchronise() -> None:
    """Wait for queued GPU work, so that a timed part's time is its own."""
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()
