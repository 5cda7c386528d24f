"""Level labels for the loop's instances (top to bottom): counted from an end landmark, else from the view.

With an end landmark (the classifier's `top_end` / `bottom_end` on a kept instance) that instance is
the view's end level and the others count away from it. Without one: a film holding exactly the
view's top..bottom count is labelled with that range; otherwise counting starts at the view's
`anchors` end (cervical: down from C2 at the top; lumbar: up from S1 at the bottom). A view's ends
are its `end_levels` entry, else the dataset's first_level / last_level.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from spinefm.data.levels import level_range, normalize_level, offset_level
from spinefm.models.spine_end import view_end_levels

ENDS = ("top", "bottom")
DEFAULT_ANCHORS = {"lateral_cervical": "top", "lateral_lumbar": "bottom", "ap_thoracolumbar": "top", "default": "top"}


@dataclass
class LabelConfig:
    """end_levels: the dataset's {view: {top, bottom}}; first_level / last_level: its level range
    (None: filled from the checkpoints by `components.load_loop`). anchors: per view (or `default`),
    the end counting starts from when no landmark was found (given entries replace those of
    DEFAULT_ANCHORS). prefer_end: which landmark wins when both ends were found."""

    end_levels: Mapping | None = None
    first_level: str | None = None
    last_level: str | None = None
    anchors: Mapping = field(default_factory=lambda: dict(DEFAULT_ANCHORS))
    prefer_end: str = "top"

    def __post_init__(self):
        self.anchors = {**DEFAULT_ANCHORS, **self.anchors}
        for end in [self.prefer_end, *self.anchors.values()]:
            if end not in ENDS:
                raise ValueError(f"label anchors and prefer_end must be one of {ENDS}, not {end!r}")

    def view_ends(self, view: str | None) -> dict[str, str | None]:
        """{top, bottom} levels of a view: its end levels, else the dataset's range."""
        ends = view_end_levels(self.end_levels or {}, view)
        return {"top": ends.get("top") or self.first_level, "bottom": ends.get("bottom") or self.last_level}

    def anchor(self, view: str | None) -> str:
        return self.anchors.get(view, self.anchors["default"])


def assign_levels(
    count: int, view: str | None, config: LabelConfig, top_end: int | None = None, bottom_end: int | None = None
) -> list[str | None]:
    """Levels of `count` instances ordered top to bottom; None where the count leaves C1..S1 or no
    anchor level is known. top_end / bottom_end: index of the instance classified as that end."""
    landmarks = view_end_levels(config.end_levels or {}, view)
    found = {"top": top_end if landmarks.get("top") else None, "bottom": bottom_end if landmarks.get("bottom") else None}
    ends = config.view_ends(view)
    order = (config.prefer_end, *(e for e in ENDS if e != config.prefer_end))
    landmark = next((end for end in order if found[end] is not None), None)
    if landmark is not None:
        index, level = found[landmark], landmarks[landmark]
    elif ends["top"] and ends["bottom"] and count == len(level_range(ends["top"], ends["bottom"])):
        index, level = 0, ends["top"]
    else:
        end = config.anchor(view)
        index, level = (0 if end == "top" else count - 1), ends[end]
    if level is None:
        return [None] * count
    level = normalize_level(level)
    return [offset_level(level, i - index) for i in range(count)]
