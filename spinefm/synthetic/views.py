"""Per-view anatomy tables: which bodies a phantom draws, their nominal sizes and which are annotated."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinefm.data.levels import level_range


@dataclass(frozen=True)
class BodySpec:
    name: str  # level name; "S2".."S4" for the fused sacral segments below S1
    kind: str  # outline family: "box", "dens" (C2 with its odontoid) or "sacral" (narrowing wedge)
    height_mm: float  # along the spine
    width_mm: float  # across it: antero-posterior depth on laterals, transverse width on AP
    gap_mm: float  # disc space above this body
    role: str  # "annotated", "optional" (annotated in some images) or "context" (drawn, never annotated)


@dataclass(frozen=True)
class ViewSpec:
    name: str
    bodies: tuple[BodySpec, ...]
    aspect: tuple[float, float]  # range of image width / height
    frame_pad_mm: tuple[float, float]  # room kept above / below the framed bodies (C1 arch, sacrum)
    frame_context: tuple[str, ...]  # context bodies kept fully in view unless the spine is cut off
    fill: tuple[float, float]  # range of the fraction of image height the framed bodies and padding span
    across: tuple[float, float]  # range of where the spine sits across the free width (0 left, 1 right)
    lateral: bool  # lateral film (lordosis, anterior to the left) or AP (scoliosis)


def _ramp(first, last, height, width, gap, role="annotated", kind="box"):
    """Consecutive levels whose sizes change linearly from `first` to `last`."""
    names = level_range(first, last)
    fractions = np.linspace(0.0, 1.0, len(names))
    return tuple(
        BodySpec(name, kind, *(float(np.interp(f, (0, 1), pair)) for pair in (height, width, gap)), role)
        for name, f in zip(names, fractions)
    )


_FUSED = 1.2  # mm between fused sacral segments: a faint line, not a disc

LATERAL_CERVICAL = ViewSpec(
    name="lateral_cervical",
    bodies=(
        BodySpec("C2", "dens", 24.0, 16.0, 0.0, "annotated"),
        *_ramp("C3", "C7", height=(13.0, 14.0), width=(15.5, 17.0), gap=(4.0, 4.5)),
        BodySpec("T1", "box", 15.5, 18.0, 4.5, "optional"),
        BodySpec("T2", "box", 17.0, 19.5, 4.5, "context"),
    ),
    aspect=(0.8, 0.9),
    frame_pad_mm=(14.0, 3.0),
    frame_context=(),
    fill=(0.5, 0.68),
    across=(0.45, 0.8),
    lateral=True,
)

LATERAL_LUMBAR = ViewSpec(
    name="lateral_lumbar",
    bodies=(
        BodySpec("T11", "box", 22.0, 28.0, 0.0, "context"),
        *_ramp("T12", "L5", height=(23.5, 26.5), width=(30.0, 36.0), gap=(6.0, 10.5)),
        BodySpec("S1", "sacral", 26.0, 42.0, 9.5, "annotated"),
        BodySpec("S2", "sacral", 21.0, 30.0, _FUSED, "context"),
        BodySpec("S3", "sacral", 17.0, 22.0, _FUSED, "context"),
        BodySpec("S4", "sacral", 14.0, 16.0, _FUSED, "context"),
    ),
    aspect=(0.75, 0.85),
    frame_pad_mm=(3.0, 12.0),
    frame_context=(),
    fill=(0.7, 0.88),
    across=(0.3, 0.7),
    lateral=True,
)

AP_THORACOLUMBAR = ViewSpec(
    name="ap_thoracolumbar",
    bodies=(
        BodySpec("C6", "box", 12.5, 21.0, 0.0, "context"),
        BodySpec("C7", "box", 13.5, 24.0, 4.5, "context"),
        *_ramp("T1", "T12", height=(14.5, 23.5), width=(27.0, 40.0), gap=(4.5, 6.5)),
        *_ramp("L1", "L5", height=(25.0, 26.5), width=(43.0, 51.0), gap=(8.0, 10.0)),
        BodySpec("S1", "sacral", 24.0, 80.0, 9.0, "context"),
        BodySpec("S2", "sacral", 20.0, 56.0, _FUSED, "context"),
        BodySpec("S3", "sacral", 16.0, 40.0, _FUSED, "context"),
        BodySpec("S4", "sacral", 13.0, 28.0, _FUSED, "context"),
    ),
    aspect=(0.35, 0.5),
    frame_pad_mm=(3.0, 3.0),
    frame_context=("C7", "S1"),
    fill=(0.8, 0.93),
    across=(0.35, 0.65),
    lateral=False,
)

VIEW_SPECS = {spec.name: spec for spec in (LATERAL_CERVICAL, LATERAL_LUMBAR, AP_THORACOLUMBAR)}
