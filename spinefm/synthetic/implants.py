"""Metal implants over a few consecutive annotated vertebrae: pedicle screws and rods, or a cervical plate."""

from __future__ import annotations

import numpy as np

from spinefm.synthetic.geometry import Body, ellipse
from spinefm.synthetic.render import Shape, stroke_width


def implant_shapes(view: str, bodies: list[Body], rng: np.random.Generator) -> tuple[list[Shape], list[str]]:
    """Saturating metal over 2-5 consecutive annotated bodies; returns the shapes and those bodies' levels."""
    candidates = [b for b in bodies if b.role == "annotated" and b.kind != "sacral"]
    count = min(len(candidates), int(rng.integers(2, 6)))
    start = int(rng.integers(0, len(candidates) - count + 1))
    run = candidates[start : start + count]
    metal = rng.uniform(1.0, 1.5)
    if view == "ap_thoracolumbar":
        shapes = _rods_ap(run, metal)
    elif view == "lateral_cervical" and rng.random() < 0.5:
        shapes = _anterior_plate(run, metal)
    else:
        shapes = _screws_lateral(run, metal)
    return shapes, [b.name for b in run]


def _point(body: Body, u: float, v: float) -> np.ndarray:
    """Image point at (u, v) body widths / heights from the body's centre."""
    return body.to_image((u * body.width, v * body.height))[0]


def _rods_ap(run: list[Body], metal: float) -> list[Shape]:
    """Two rods beside the midline, screws seen end-on as ovals in the pedicles."""
    shapes = []
    for side in (-1, 1):
        rod = [_point(run[0], side * 0.32, -0.6)] + [_point(b, side * 0.32, 0.0) for b in run]
        rod.append(_point(run[-1], side * 0.32, 0.6))
        shapes.append(Shape(np.array(rod), metal, "implant", stroke_width(0.15 * run[0].width)))
        for b in run:
            screw = ellipse((side * 0.3 * b.width, -0.1 * b.height), 0.12 * b.width, 0.16 * b.height)
            shapes.append(Shape(b.to_image(screw), metal, "implant"))
    return shapes


def _anterior_plate(run: list[Body], metal: float) -> list[Shape]:
    """A plate on the bodies' anterior surface with two screws into each body."""
    plate = np.array([_point(b, -0.62, v) for b in run for v in (-0.42, 0.42)])
    shapes = [Shape(plate, metal, "implant", stroke_width(0.14 * run[0].width))]
    for b in run:
        for v in (-0.22, 0.22):
            screw = np.array([_point(b, -0.62, v), _point(b, 0.15, 0.8 * v)])
            shapes.append(Shape(screw, metal, "implant", stroke_width(0.08 * b.height)))
    return shapes


def _screws_lateral(run: list[Body], metal: float) -> list[Shape]:
    """Pedicle screws from behind into each body, joined by a rod at their heads."""
    heads = [_point(b, 1.05, -0.05) for b in run]
    shapes = [Shape(np.array(heads), metal, "implant", stroke_width(0.2 * run[0].height))]
    for b, head in zip(run, heads):
        shapes.append(Shape(np.array([head, _point(b, -0.2, 0.0)]), metal, "implant", stroke_width(0.2 * b.height)))
    return shapes
