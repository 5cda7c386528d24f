"""Build a dataset split's reader from its Hydra `dataset` config."""

from __future__ import annotations

from hydra.utils import instantiate

from spinefm.data.readers.base import Reader


def build_reader(dataset_cfg, split: str) -> Reader:
    return instantiate(dataset_cfg.reader, split=split, _convert_="all")
