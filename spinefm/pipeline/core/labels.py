"""What the decoder needs to label a film's chain: the view's end landmarks, its labelled range, the
anchor end and the count prior (`spinefm.pipeline.core.decode`).

A view's landmarks are its `end_levels` entry (the levels the classifier's `top_end` / `bottom_end`
mark, or where its level classes call the view's ends); its labelled range runs from its top
landmark, else the dataset's first_level, to its bottom landmark, else the dataset's last_level.
Where the chain shows no end, counting starts at the view's `anchors` end (cervical: down from C2
at the top; lumbar: up from S1 at the bottom).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spinefm.data.classes import view_end_levels
from spinefm.pipeline.core.decode import ChainView, l6_rate_from_counts

ENDS = ("top", "bottom")
DEFAULT_ANCHORS = {"lateral_cervical": "top", "lateral_lumbar": "bottom", "ap_thoracolumbar": "top", "default": "top"}


@dataclass
class LabelConfig:
    """end_levels: the dataset's {view: {top, bottom}}; first_level / last_level: its level range;
    level_counts: {view: {levels from the top end to the bottom end: films}} of the training data
    (None for each: filled from the checkpoints by `components.load_loop`). anchors: per view (or
    `default`), the end counting starts from when the chain shows no end (given entries replace those
    of DEFAULT_ANCHORS)."""

    end_levels: dict[str, Any] | None = None
    first_level: str | None = None
    last_level: str | None = None
    level_counts: dict[str, Any] | None = None
    anchors: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ANCHORS))

    def __post_init__(self):
        self.anchors = {**DEFAULT_ANCHORS, **self.anchors}
        for end in self.anchors.values():
            if end not in ENDS:
                raise ValueError(f"label anchors must be one of {ENDS}, not {end!r}")

    def view_ends(self, view: str | None) -> dict[str, str | None]:
        """{top, bottom} levels of a view: its end levels, else the dataset's range."""
        ends = view_end_levels(self.end_levels or {}, view)
        return {"top": ends.get("top") or self.first_level, "bottom": ends.get("bottom") or self.last_level}

    def anchor(self, view: str | None) -> str:
        return self.anchors.get(view, self.anchors["default"])

    def chain_view(self, view: str | None, default_l6_rate: float) -> ChainView:
        """The decoder's view of a film: landmarks, labelled range, anchor and L6 rate."""
        landmarks = view_end_levels(self.end_levels or {}, view)
        ends = self.view_ends(view)
        counts = view_end_levels(self.level_counts or {}, view)
        l6_rate = l6_rate_from_counts(counts, landmarks.get("top"), landmarks.get("bottom"), default_l6_rate)
        return ChainView.of(
            landmarks.get("top"), landmarks.get("bottom"), ends["top"], ends["bottom"], self.anchor(view), l6_rate
        )
