"""How the walks went over a run: each direction's stop reasons, the chain positions the decoder
dropped, the positions repaired from detections, the confident detections no final vertebra
claimed, and the patches Med-SA segmented (from each film's `trace`)."""

from __future__ import annotations

from collections import Counter

from spinefm.pipeline.core.types import DOWN, UP


class WalkTally:
    def __init__(self):
        self.stops = {UP: Counter(), DOWN: Counter()}
        self.dropped: Counter = Counter()
        self.repairs: Counter = Counter()
        self.unclaimed = 0
        self.patches = 0
        self.films = 0

    def add(self, trace: dict) -> None:
        self.films += 1
        for direction, reason in (trace.get("stops") or {}).items():
            self.stops[direction][reason] += 1
        self.dropped.update(trace.get("dropped") or {})
        self.repairs.update(trace.get("repairs") or {})
        self.unclaimed += int(trace.get("unclaimed") or 0)
        self.patches += segmented_patches(trace)

    def summary(self) -> dict:
        """{stops: {up: {reason: films}, down: ...}, dropped: {why: positions}, repairs: {kind: positions},
        unclaimed_per_film, patches_per_film}."""
        return {
            "films": self.films,
            "stops": {direction: dict(counts.most_common()) for direction, counts in self.stops.items()},
            "dropped": dict(self.dropped),
            "repairs": dict(self.repairs),
            "unclaimed_per_film": self.unclaimed / self.films if self.films else float("nan"),
            "patches_per_film": self.patches / self.films if self.films else float("nan"),
        }


def segmented_patches(trace: dict) -> int:
    """The patches Med-SA saw for a film (traces before `masks` was recorded: its seeds, the steps that
    were segmented, not those stopped at the border, and the repairs' re-prompts)."""
    if "masks" in trace:
        return trace["masks"].get("segmenter", 0)
    steps = sum(step.get("side") is not None for step in trace.get("steps") or [])
    return len(trace.get("seeds") or []) + steps + sum((trace.get("repairs") or {}).values())


def format_walk(walk: dict) -> list[str]:
    """Terminal lines: stop reasons per direction and unclaimed detections."""
    lines = []
    for direction, counts in walk["stops"].items():
        lines.append(
            f"{'stops ' + direction:<32} " + (", ".join(f"{reason} {n}" for reason, n in counts.items()) or "-")
        )
    repairs = walk.get("repairs") or {}
    lines.append(f"{'chain repairs':<32} " + (", ".join(f"{kind} {n}" for kind, n in repairs.items()) or "-"))
    lines.append(f"{'unclaimed detections per film':<32} {walk['unclaimed_per_film']:.2f}")
    lines.append(f"{'Med-SA patches per film':<32} {walk['patches_per_film']:.1f}")
    return lines
