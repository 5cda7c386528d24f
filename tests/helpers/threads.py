"""torch's CPU thread count for a while."""

from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(count: int):
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
