"""The spine's own shapes: vertebral bodies with a cortical rim, their processes, and the fused sacrum.

Sizes are relative to each body's pixel size, so they follow the image's scale.
"""

from __future__ import annotations

import numpy as np

from spinefm.synthetic.geometry import Body, ellipse
from spinefm.synthetic.render import Look, Shape, stroke_width


def spine_shapes(bodies: list[Body], lateral: bool, look: Look, rng: np.random.Generator) -> list[Shape]:
    """Processes and sacral fusions first, so the bodies drawn after them overwrite where they touch."""
    shapes = []
    for body in bodies:
        if body.kind != "sacral":
            shapes += _posterior_elements(body, look, rng) if lateral else _ap_elements(body, look)
    for upper, lower in zip(bodies, bodies[1:]):
        if upper.kind == lower.kind == "sacral":  # fused segments; the annotated S1 keeps a visible line
            bridge = np.vstack(
                [
                    upper.to_image(
                        [(-0.35 * upper.width, 0.4 * upper.height), (0.35 * upper.width, 0.4 * upper.height)]
                    ),
                    lower.to_image(
                        [(0.45 * lower.width, -0.4 * lower.height), (-0.45 * lower.width, -0.4 * lower.height)]
                    ),
                ]
            )
            shapes.append(Shape(bridge, look.bone * (0.4 if upper.role == "annotated" else 0.8)))
    rim = look.bone * rng.uniform(0.3, 0.7)
    for body in bodies:
        density = look.bone * rng.uniform(0.85, 1.1) * (0.85 if body.kind == "sacral" else 1.0)
        # The rim lies inside the outline, so the drawn body is exactly the annotated one.
        t = max(1.0, 0.08 * min(body.width, body.height))
        inner = body.to_image(body.outline * (1 - 2 * t / body.width, 1 - 2 * t / body.height))
        shapes += [Shape(body.polygon, density), Shape(body.polygon, rim, "rim"), Shape(inner, 0.0, "rim")]
    return shapes


def _posterior_elements(body: Body, look: Look, rng: np.random.Generator) -> list[Shape]:
    """Lateral view: pedicle, articular pillar and spinous process behind the body (+u is posterior)."""
    w, h = body.width, body.height
    top, bottom = (-0.05 * h, 0.48 * h) if body.kind == "dens" else (-0.45 * h, 0.45 * h)
    span, wall, reach = bottom - top, 0.5 * w, rng.uniform(1.0, 1.6) * w
    local = [
        (wall, top + 0.1 * span),
        (wall + 0.35 * w, top),
        (wall + 0.75 * w, top + 0.15 * span),
        (wall + reach, top + 0.55 * span),
        (wall + reach - 0.05 * w, top + 0.85 * span),
        (wall + 0.7 * w, bottom - 0.05 * span),
        (wall + 0.35 * w, bottom + 0.08 * span),
        (wall, top + 0.55 * span),
    ]
    return [Shape(body.to_image(local), look.bone * rng.uniform(0.3, 0.5))]


def _ap_elements(body: Body, look: Look) -> list[Shape]:
    """AP view: pedicle rings and the spinous process over the body, transverse processes beside lumbar ones."""
    w, h = body.width, body.height
    shapes = [Shape(body.to_image(ellipse((0, 0.22 * h), 0.06 * w, 0.28 * h)), 0.2 * look.bone, "overlay")]
    for side in (-1, 1):
        pedicle = body.to_image(ellipse((side * 0.3 * w, -0.12 * h), 0.08 * w, 0.14 * h, n=16))
        shapes.append(Shape(pedicle, 0.4 * look.bone, "overlay", stroke_width(0.025 * w), closed=True))
        if body.name.startswith("L"):
            process = body.to_image([(side * 0.45 * w, -0.05 * h), (side * 0.92 * w, -0.12 * h)])
            shapes.append(Shape(process, 0.45 * look.bone, "bone", stroke_width(0.22 * h)))
    return shapes
