"""Framing: scale, tilt and position the spine in the image, optionally running it out at one end."""

from __future__ import annotations

import numpy as np

from spinefm.synthetic.geometry import Body, BodyPlan, extent, place_bodies, rotate_bodies, shift_bodies
from spinefm.synthetic.views import ViewSpec

_MARGIN = 2.0  # pixels kept between framed bodies and the image border


def frame_spine(
    plans: list[BodyPlan],
    tangent,
    spec: ViewSpec,
    width: int,
    height: int,
    *,
    tilt: float,
    cut: str | None,
    cut_depth: float,
    min_gap_px: float,
    rng: np.random.Generator,
) -> tuple[list[Body], float]:
    """Place the bodies in image pixels; returns them and the scale in pixels per mm.

    The annotated run, the view's end context and its padding span a fraction `spec.fill` of the
    image height. A cut-off then moves the spine up ("top") or down ("bottom") until its end
    annotated body overflows the border by `cut_depth` vertebral pitches.
    """
    run = [i for i, p in enumerate(plans) if p.role == "annotated"]
    framed = sorted(set(run) | {i for i, p in enumerate(plans) if p.name in spec.frame_context})
    pad_top, pad_bottom = spec.frame_pad_mm
    nominal = sum(plans[i].height + (plans[i].gap if i != framed[0] else 0) for i in range(framed[0], framed[-1] + 1))
    target = rng.uniform(*spec.fill) * height
    px_per_mm = target / (nominal + pad_top + pad_bottom)

    room_w, room_h = width - 1 - 2 * _MARGIN, height - 1 - 2 * _MARGIN
    for _ in range(12):
        bodies = place_bodies(plans, tangent, px_per_mm, min_gap_px)
        chord = bodies[run[-1]].centre - bodies[run[0]].centre
        rotate_bodies(bodies, tilt - np.arctan2(chord[0], chord[1]))
        x0, y0, x1, y1 = extent([bodies[i] for i in framed])
        y0, y1 = y0 - pad_top * px_per_mm, y1 + pad_bottom * px_per_mm
        scale = min(target / (y1 - y0), room_w / (x1 - x0))
        if x1 - x0 <= room_w and y1 - y0 <= room_h and scale < 1.03:
            break
        px_per_mm *= scale * (0.99 if scale < 1 else 1.0)
    else:
        raise RuntimeError("could not fit the spine into the image")

    dx = _MARGIN + rng.uniform(*spec.across) * (room_w - (x1 - x0)) - x0
    dy = _MARGIN + rng.uniform(0.0, 1.0) * (room_h - (y1 - y0)) - y0
    shift_bodies(bodies, dx, dy)
    if cut is not None:
        pitch = np.linalg.norm(bodies[run[-1]].centre - bodies[run[0]].centre) / (len(run) - 1)
        if cut == "top":
            shift_bodies(bodies, 0.0, -cut_depth * pitch - bodies[run[0]].polygon[:, 1].min())
        else:
            shift_bodies(bodies, 0.0, height - 1 + cut_depth * pitch - bodies[run[-1]].polygon[:, 1].max())
    return bodies, px_per_mm
