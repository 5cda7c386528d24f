"""Build a dataset split's reader from its Hydra `dataset` config."""

from __future__ import annotations

import logging

from hydra.utils import instantiate

from spinefm.data.problems import DataError
from spinefm.data.readers.base import Reader
from spinefm.data.record import ImageRecord

log = logging.getLogger(__name__)


def build_reader(dataset_cfg, split: str) -> Reader:
    return instantiate(dataset_cfg.reader, split=split, _convert_="all")


def load_records(dataset_cfg, split: str, limit: int | None = None) -> tuple[list[ImageRecord], list[str]]:
    """The split's records (the first `limit`), and the problems of those that could not be read
    (each logged by name and skipped)."""
    reader = build_reader(dataset_cfg, split)
    records, skipped = [], []
    for index in range(len(reader) if limit is None else min(limit, len(reader))):
        try:
            records.append(reader[index])
        except DataError as error:
            skipped.append(str(error.problem))
            log.warning("skipped %s", error.problem)
    return records, skipped
