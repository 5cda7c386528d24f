"""What surrounds the spine in each view and is never annotated: the soft-tissue silhouette, air and
denser soft tissue, and distracting bone (skull, C1, mandible, ribs, clavicles, pelvis).

Sizes are relative to the placed bodies' pixel sizes, so they follow the image's scale.
"""

from __future__ import annotations

import numpy as np

from spinefm.synthetic.geometry import Body, ellipse, rounded_polygon
from spinefm.synthetic.render import Look, Shape, stroke_width


def context_shapes(view: str, bodies: list[Body], look: Look, width: int, height: int, rng) -> list[Shape]:
    builder = {"lateral_cervical": _cervical, "lateral_lumbar": _lumbar, "ap_thoracolumbar": _thoracolumbar}[view]
    return builder({b.name: b for b in bodies}, bodies, look, width, height, rng)


def _silhouette(bodies: list[Body], height: int, knots_y, left, right, value: float) -> Shape:
    """The patient's outline as offsets left / right of the spine's centre, interpolated between rows."""
    centres = np.array([b.centre for b in bodies])
    ys = np.linspace(-0.1 * height, 1.1 * height, 48)
    cx = np.interp(ys, centres[:, 1], centres[:, 0])
    left_edge = np.stack([cx - np.interp(ys, knots_y, left), ys], axis=1)
    right_edge = np.stack([cx + np.interp(ys, knots_y, right), ys], axis=1)
    return Shape(np.concatenate([left_edge, right_edge[::-1]]), value, "soft")


def _cervical(by_name, bodies, look: Look, width, height, rng) -> list[Shape]:
    c2, c4, c7 = by_name["C2"], by_name["C4"], by_name["C7"]
    unit, bone, tissue = c4.width, look.bone, look.tissue
    # Neck: the face above C2 fills the width; the front of the neck slopes down to the chest.
    front, back = rng.uniform(2.8, 3.8) * unit, rng.uniform(3.2, 4.5) * unit
    knots = [
        -height,
        c2.centre[1] - c2.height,
        by_name["C3"].centre[1],
        by_name["C5"].centre[1],
        c7.centre[1],
        c7.centre[1] + 3 * unit,
        2 * height,
    ]
    anterior = [width, width, 1.8 * front, front, 1.1 * front, width, width]
    posterior = [width, width, 1.2 * back, back, 1.1 * back, width, width]
    shapes = [_silhouette(bodies, height, knots, anterior, posterior, tissue)]
    # Airway (dark) in front of the spine; shoulders (dense) over the cervico-thoracic junction.
    airway = np.array([b.to_image((-rng.uniform(1.2, 1.5) * b.width, 0.0))[0] for b in bodies])
    shapes.append(Shape(airway, tissue * rng.uniform(0.4, 0.7), "soft", stroke_width(0.45 * unit)))
    xs = np.linspace(-20, width + 20, 24)
    top = c7.centre[1] + rng.uniform(-1.5, 0.5) * unit
    arc = top + rng.uniform(0.5, 2.0) * unit * ((xs - c7.centre[0]) / width) ** 2
    shoulders = np.vstack([np.stack([xs, arc], 1), [(width + 20, height + 20), (-20, height + 20)]])
    shapes.append(Shape(shoulders, tissue * rng.uniform(1.3, 1.8), "soft"))

    w, h = c2.width, c2.height
    # C1: anterior arch in front of the dens, posterior arch behind it.
    shapes.append(Shape(c2.to_image(ellipse((-0.5 * w, -0.38 * h), 0.13 * w, 0.15 * h)), 0.7 * bone))
    posterior_arch = ellipse((1.25 * w, -0.38 * h), 0.55 * w, 0.11 * h, rng.uniform(-0.2, 0.1))
    shapes.append(Shape(c2.to_image(posterior_arch), 0.55 * bone))
    # Skull: a dense shell whose base arches over C1.
    rx, ry = rng.uniform(6.0, 8.0) * unit, rng.uniform(4.0, 5.5) * unit
    centre = (rng.uniform(1.0, 3.0) * w, -0.5 * h - rng.uniform(0.3, 0.6) * h - ry)
    skull = c2.to_image(ellipse(centre, rx, ry, n=64))
    shapes += [
        Shape(skull, 0.3 * bone, "overlay"),
        Shape(skull, 0.6 * bone, "overlay", stroke_width(0.35 * unit), closed=True),
    ]
    # Mandible: ramus down from the skull base, round the angle, forward to the chin (a quadratic Bezier).
    jitter = rng.uniform(-0.3, 0.3, (3, 2)) * w
    condyle, angle, chin = np.array([(-1.0, -1.9), (-1.8, 0.6), (-5.0, 0.3)]) * (w, h) + jitter
    tau = np.linspace(0, 1, 16)[:, None]
    mandible = (1 - tau) ** 2 * condyle + 2 * (1 - tau) * tau * angle + tau**2 * chin
    shapes.append(Shape(c2.to_image(mandible), 0.35 * bone, "overlay", stroke_width(0.5 * unit)))
    hyoid = c4.to_image([(-2.4 * c4.width, 0.0), (-1.8 * c4.width, -0.15 * c4.height)])
    shapes.append(Shape(hyoid, 0.4 * bone, "overlay", stroke_width(0.2 * unit)))
    return shapes


def _lumbar(by_name, bodies, look: Look, width, height, rng) -> list[Shape]:
    l3, s1 = by_name["L3"], by_name["S1"]
    unit, bone, tissue = l3.width, look.bone, look.tissue
    front, back = rng.uniform(3.0, 6.0) * unit, rng.uniform(1.9, 2.6) * unit
    knots = [-height, l3.centre[1], s1.centre[1], 2 * height]
    anterior, posterior = np.array([1, 1, 1.1, 1.2]) * front, np.array([1, 1, 1.2, 1.6]) * back
    shapes = [_silhouette(bodies, height, knots, anterior, posterior, tissue)]
    # Bowel gas: dark blobs, mostly in front of the spine, some over it.
    for _ in range(rng.integers(2, 9)):
        centre = (l3.centre[0] - rng.uniform(0.3, 4.0) * unit, rng.uniform(0.1, 0.95) * height)
        blob = ellipse(centre, rng.uniform(0.2, 0.8) * unit, rng.uniform(0.2, 0.6) * unit, rng.uniform(0, np.pi))
        shapes.append(Shape(blob, tissue * rng.uniform(0.4, 0.7), "soft"))
    # Lower ribs across the thoracolumbar junction, the iliac wing over L5-S1, a femoral head below.
    for body in (by_name["T11"], by_name["T12"]):
        rib = body.to_image(np.array([(1.3, -0.3), (-0.5, 0.6), (-2.5, 1.8)]) * (body.width, body.height))
        shapes.append(Shape(rib, 0.2 * bone, "overlay", stroke_width(0.15 * unit)))
    centre = (rng.uniform(0.0, 0.6) * s1.width, rng.uniform(-0.2, 0.6) * s1.height)
    radii = (rng.uniform(1.2, 1.7) * s1.width, rng.uniform(1.6, 2.4) * s1.height)
    wing = s1.to_image(ellipse(centre, *radii, rng.uniform(-0.3, 0.3), n=40))
    shapes += [
        Shape(wing, 0.2 * bone, "overlay"),
        Shape(wing, 0.35 * bone, "overlay", stroke_width(0.12 * unit), closed=True),
    ]
    centre = (-rng.uniform(0.5, 1.2) * s1.width, rng.uniform(3.5, 4.5) * s1.height)
    shapes.append(Shape(s1.to_image(ellipse(centre, 0.9 * unit, 0.9 * unit)), 0.35 * bone, "overlay"))
    return shapes


def _thoracolumbar(by_name, bodies, look: Look, width, height, rng) -> list[Shape]:
    t1, t6, s1 = by_name["T1"], by_name["T6"], by_name["S1"]
    unit, bone, tissue = t6.width, look.bone, look.tissue
    neck, torso = rng.uniform(1.5, 2.2) * unit, rng.uniform(0.55, 0.8) * width
    knots = [-height] + [by_name[n].centre[1] for n in ("C6", "T1", "T4", "L3", "S1")] + [2 * height]
    half = np.array([neck, neck, 1.8 * neck, torso, torso * rng.uniform(0.85, 1.0), 1.1 * torso, 1.1 * torso])
    shapes = [_silhouette(bodies, height, knots, half * rng.uniform(0.9, 1.1), half * rng.uniform(0.9, 1.1), tissue)]
    # Mediastinum (denser) along the thoracic spine, lungs (darker) either side of it down to the diaphragm.
    thoracic = np.array([by_name[f"T{i}"].centre for i in range(1, 11)])
    shapes.append(Shape(thoracic, tissue * rng.uniform(1.1, 1.4), "soft", stroke_width(rng.uniform(2.0, 3.2) * unit)))
    top, bottom = t1.centre[1] - t1.height, by_name[f"T{rng.integers(10, 12)}"].centre[1]
    for side in (-1, 1):
        rx = rng.uniform(1.3, 2.2) * unit
        centre = (t6.centre[0] + side * (rng.uniform(0.7, 1.0) * unit + rx), (top + bottom) / 2)
        shapes.append(Shape(ellipse(centre, rx, (bottom - top) / 2), tissue * rng.uniform(0.35, 0.6), "soft"))
    # Posterior ribs from each thoracic body, running out laterally and curving down.
    rib = rng.uniform(0.15, 0.35) * bone
    tau = np.linspace(0, 1, 10)
    for i in range(1, 13):
        body = by_name[f"T{i}"]
        length = np.interp(i, (1, 7, 12), (2.0, 4.5, 1.8)) * unit
        for side in (-1, 1):
            u = side * (0.55 * body.width + length * tau)
            v = -0.1 * body.height + length * (0.05 * tau + 0.45 * tau**2)
            shapes.append(Shape(body.to_image(np.stack([u, v], 1)), rib, "overlay", stroke_width(0.3 * body.height)))
    # Clavicles from the sternum up and out; iliac wings beside the sacrum.
    t3, w, h = by_name["T3"], s1.width, s1.height
    for side in (-1, 1):
        clavicle = np.array(
            [
                (t3.centre[0] + side * 0.6 * t1.width, t3.centre[1]),
                (t1.centre[0] + side * 2.0 * t1.width, t1.centre[1] - 0.2 * t1.height),
                (
                    t1.centre[0] + side * rng.uniform(3.0, 4.0) * t1.width,
                    t1.centre[1] - rng.uniform(1.0, 2.0) * t1.height,
                ),
            ]
        )
        shapes.append(Shape(clavicle, 0.35 * bone, "overlay", stroke_width(0.45 * t1.height)))
        corners = np.array([(0.52, -0.3), (0.8, -1.6), (1.5, -1.5), (1.7, -0.5), (1.3, 1.5), (0.55, 1.2)])
        corners = corners * (side * w, h)
        wing = s1.to_image(rounded_polygon(corners, 0.5 * h, 6))
        shapes += [
            Shape(wing, 0.3 * bone, "overlay"),
            Shape(wing, 0.5 * bone, "overlay", stroke_width(0.1 * unit), closed=True),
        ]
    return shapes
