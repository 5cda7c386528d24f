"""What every reader shares: a split of a source as a sequence of records built on access."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spinefm.data.problems import DataError, Problem
from spinefm.data.record import ImageRecord, tidy_vertebrae
from spinefm.data.splits import assign_splits

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


def is_dataset_root(root) -> bool:
    """Whether a dataset's `root` is a folder to read from."""
    return root is not None and Path(root).is_dir()


@dataclass
class Entry:
    """A cheap index entry: enough to find one image's files, parsed only on access."""

    id: str
    group: str | None = None  # images of one patient share a group and a split
    split: str | None = None  # the source's own split, where it has one
    payload: Any = None
    extra: dict = field(default_factory=dict)


class Reader(Sequence, ABC):
    """One split (`train`, `val`, `test` or `all`) of a dataset source.

    Indexing is cheap; `reader[i]` parses that image's annotations and returns an ImageRecord
    whose unusable outlines were dropped and listed in `record.problems`. It raises DataError
    (with a Problem naming the file) when the image cannot be used at all.
    Sources without their own split files are split by patient group with `split_fractions`
    and `split_seed`.
    """

    def __init__(
        self,
        root,
        split: str = "train",
        split_fractions: Mapping[str, float] | None = None,
        split_seed: int = 0,
        min_area: float = 4.0,
        max_overlap_iou: float = 0.2,
    ):
        if split not in (*SPLITS, "all"):
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS} or 'all'")
        self.root = Path(root).expanduser() if root is not None else None
        self.split = split
        self.min_area = min_area
        self.max_overlap_iou = max_overlap_iou
        entries = self._index()
        if any(entry.split is None for entry in entries):
            fractions = dict(split_fractions or DEFAULT_FRACTIONS)
            by_group = assign_splits([e.group or e.id for e in entries], fractions, split_seed)
            for entry in entries:
                entry.split = entry.split or by_group[entry.group or entry.id]
        self.entries = [e for e in entries if split == "all" or e.split == split]

    @abstractmethod
    def _index(self) -> list[Entry]:
        """List every image of the source (all splits)."""

    @abstractmethod
    def _build(self, entry: Entry) -> ImageRecord:
        """Parse one entry's annotations; raise DataError when the image cannot be used."""

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> ImageRecord:
        entry = self.entries[index]
        record = self._build(entry)
        record.vertebrae, problems = tidy_vertebrae(record.id, record.vertebrae, self.min_area, self.max_overlap_iou)
        record.problems.extend(problems)
        return record

    @property
    def ids(self) -> list[str]:
        return [entry.id for entry in self.entries]

    def require_root(self) -> Path:
        if not is_dataset_root(self.root):
            raise FileNotFoundError(
                f"{type(self).__name__}: dataset root {self.root} is not a folder; set dataset.root=PATH"
            )
        return self.root

    def _problem(self, kind: str, entry: Entry, message: str, path=None, level=None) -> Problem:
        return Problem(kind, entry.id, message, path=str(path) if path is not None else None, level=level)

    def _fail(self, kind: str, entry: Entry, message: str, path=None) -> DataError:
        return DataError(self._problem(kind, entry, message, path))
