"""Problems found while reading a dataset: reported by name, never fatal to a run."""

from __future__ import annotations

from dataclasses import asdict, dataclass

PROBLEM_KINDS = (
    "missing_root",
    "missing_image",
    "unreadable_image",
    "missing_annotation",
    "unreadable_annotation",
    "scrambled_corners",
    "unknown_level",
    "empty_outline",
    "degenerate_outline",
    "outline_outside_image",
    "duplicate_level",
    "level_gap",
    "level_order",
    "overlapping_outlines",
    "no_vertebrae",
)


@dataclass(frozen=True)
class Problem:
    kind: str
    image_id: str
    message: str
    path: str | None = None
    level: str | None = None

    def __post_init__(self):
        if self.kind not in PROBLEM_KINDS:
            raise ValueError(f"unknown problem kind {self.kind!r}")

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def __str__(self) -> str:
        where = f" ({self.path})" if self.path else ""
        level = f" {self.level}" if self.level else ""
        return f"[{self.kind}] {self.image_id}{level}: {self.message}{where}"


class DataError(Exception):
    """An image that cannot be used at all; carries the Problem that explains why."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem
