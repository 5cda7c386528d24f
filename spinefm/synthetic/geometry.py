"""Spine geometry: a smooth random centre line and rounded vertebral-body outlines placed along it.

Angles are measured from the image's downward vertical, positive towards +x. Each body has local
coordinates (u across the spine, v down it); on laterals -u is anterior.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass
class BodyPlan:
    """One body's sampled anatomy in millimetres, before it is placed."""

    name: str
    kind: str
    role: str
    outline: np.ndarray  # (N, 2) local (u, v) mm
    width: float
    height: float
    gap: float  # disc space above, mm
    tilt: float  # extra rotation on top of the centre line's tangent, radians


@dataclass
class Body:
    """A placed body: its outline in pixels follows from centre and angle."""

    name: str
    kind: str
    role: str
    outline: np.ndarray  # (N, 2) local (u, v) px
    width: float
    height: float
    centre: np.ndarray = field(default_factory=lambda: np.zeros(2))
    angle: float = 0.0

    def to_image(self, local) -> np.ndarray:
        """Map local (u, v) pixel offsets from the body's centre to image (x, y)."""
        local = np.asarray(local, dtype=np.float64).reshape(-1, 2)
        c, s = np.cos(self.angle), np.sin(self.angle)
        return self.centre + local[:, :1] * (c, -s) + local[:, 1:] * (s, c)

    @property
    def polygon(self) -> np.ndarray:
        return self.to_image(self.outline)


def rounded_polygon(corners: np.ndarray, radius: float, points_per_corner: int) -> np.ndarray:
    """The polygon with each corner replaced by a quadratic Bezier arc; a convex polygon stays convex."""
    tau = np.linspace(0.0, 1.0, points_per_corner)[:, None]
    arcs = []
    for i, p in enumerate(corners):
        before, after = corners[i - 1] - p, corners[(i + 1) % len(corners)] - p
        la, lb = np.linalg.norm(before), np.linalg.norm(after)
        t1 = p + before / la * min(radius, 0.45 * la)
        t2 = p + after / lb * min(radius, 0.45 * lb)
        arcs.append((1 - tau) ** 2 * t1 + 2 * (1 - tau) * tau * p + tau**2 * t2)
    return np.concatenate(arcs)


def body_corners(kind: str, height: float, width: float, wedge: float, taper: float) -> np.ndarray:
    """Quadrilateral TL, TR, BR, BL in local mm. `wedge`: relative anterior-minus-posterior height."""
    h, w = height / 2, width / 2
    if kind == "dens":  # narrow odontoid on top, slightly posterior, above a wider body
        return np.array([[-0.3 * w, -h], [0.6 * w, -h], [w, h], [-w, 0.84 * h]])
    if kind == "sacral":  # each fused segment narrows downwards
        return np.array([[-w, -h], [w, -h], [0.72 * w, h], [-0.72 * w, h]])
    ha, hp = h * (1 + wedge / 2), h * (1 - wedge / 2)
    wt, wb = w * (1 + taper), w * (1 - taper)
    return np.array([[-wt, -ha], [wt, -hp], [wb, hp], [-wb, ha]])


def tangent_function(lateral: bool, bend_deg: float, rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """Tangent angle (radians) of the centre line against t: 0 at the top of the annotated run, 1 at its bottom.

    Laterals: a lordosis, the tangent turning posteriorly by `bend_deg` over the run, more sharply
    low down when k > 0, and on into the sacrum. AP: one or two low-frequency sinusoids scaled so
    the tangent spans `bend_deg` over the run, i.e. a Cobb-like angle.
    """
    if lateral:
        k = rng.uniform(-1.0, 2.5)
        wiggle, freq, phase = np.radians(rng.uniform(0.0, 3.0)), rng.uniform(1.0, 3.0), rng.uniform(0, 2 * np.pi)
        bend = np.radians(bend_deg)

        def lordosis(t):
            ramp = t if abs(k) < 1e-3 else np.expm1(k * t) / np.expm1(k)
            return bend * ramp + wiggle * np.sin(np.pi * freq * t + phase)

        return lordosis
    n = rng.integers(1, 3)
    amp, freq, phase = rng.uniform(0.4, 1.0, n), rng.uniform(1.0, 2.5, n), rng.uniform(0, 2 * np.pi, n)

    def waves(t):
        return (amp * np.sin(np.pi * freq * np.asarray(t, float)[..., None] + phase)).sum(-1)

    grid = waves(np.linspace(0, 1, 101))
    scale = np.radians(bend_deg) / max(np.ptp(grid), 1e-6)
    # Beyond the run (neck, sacrum) the line turns back to the run's mean direction: a balanced spine
    # with a roughly level pelvis, whatever the curve does in between.
    mean = np.arctan2(np.sin(scale * grid).mean(), np.cos(scale * grid).mean())

    def scoliosis(t):
        t = np.asarray(t, float)
        inner = scale * waves(np.clip(t, 0.0, 1.0))
        outside = np.clip(np.maximum(-t, t - 1.0) / 0.08, 0.0, 1.0)
        return inner + (mean - inner) * outside

    return scoliosis


def separation(a: np.ndarray, b: np.ndarray) -> float:
    """Gap between two convex polygons along their edge normals (a lower bound of their distance; < 0: overlap)."""
    edges = np.concatenate([np.roll(a, -1, 0) - a, np.roll(b, -1, 0) - b])
    lengths = np.linalg.norm(edges, axis=1)
    edges = edges[lengths > 1e-9] / lengths[lengths > 1e-9, None]
    axes = np.stack([-edges[:, 1], edges[:, 0]], axis=1)
    pa, pb = a @ axes.T, b @ axes.T
    return float(np.maximum(pb.min(0) - pa.max(0), pa.min(0) - pb.max(0)).max())


def place_bodies(plans: list[BodyPlan], tangent, px_per_mm: float, min_gap_px: float) -> list[Body]:
    """Place bodies top to bottom along the centre line, pushing each one down until it clears the one above."""
    steps = [(a.height + b.height) / 2 + b.gap for a, b in zip(plans, plans[1:])]
    centres = np.cumsum([plans[0].height / 2] + steps)
    run = [i for i, p in enumerate(plans) if p.role == "annotated"]
    run_top = centres[run[0]] - plans[run[0]].height / 2
    run_length = centres[run[-1]] + plans[run[-1]].height / 2 - run_top

    ds = 0.5
    s_grid = np.arange(0.0, 1.6 * (centres[-1] + plans[-1].height) * px_per_mm + 50.0, ds)
    theta = tangent((s_grid / px_per_mm - run_top) / run_length)
    xs = np.concatenate([[0.0], np.cumsum(np.sin(theta[:-1]) * ds)])
    ys = np.concatenate([[0.0], np.cumsum(np.cos(theta[:-1]) * ds)])

    bodies: list[Body] = []
    s = centres[0] * px_per_mm
    for i, plan in enumerate(plans):
        if i:
            s += steps[i - 1] * px_per_mm
        for _ in range(200):
            body = Body(
                plan.name,
                plan.kind,
                plan.role,
                plan.outline * px_per_mm,
                plan.width * px_per_mm,
                plan.height * px_per_mm,
                np.array([np.interp(s, s_grid, xs), np.interp(s, s_grid, ys)]),
                float(np.interp(s, s_grid, theta)) + plan.tilt,
            )
            deficit = min_gap_px - separation(bodies[-1].polygon, body.polygon) if bodies else -1.0
            if deficit <= 0:
                break
            s += max(deficit, 0.25)
        else:
            raise RuntimeError(f"could not separate {plan.name} from the body above it")
        bodies.append(body)
    return bodies


def rotate_bodies(bodies: list[Body], alpha: float) -> None:
    """Rotate the whole spine about the origin by alpha (adds alpha to every tangent angle)."""
    c, s = np.cos(alpha), np.sin(alpha)
    for body in bodies:
        x, y = body.centre
        body.centre = np.array([x * c + y * s, -x * s + y * c])
        body.angle += alpha


def shift_bodies(bodies: list[Body], dx: float, dy: float) -> None:
    for body in bodies:
        body.centre = body.centre + (dx, dy)


def extent(bodies: list[Body]) -> np.ndarray:
    """(x0, y0, x1, y1) over the bodies' outlines."""
    points = np.concatenate([b.polygon for b in bodies])
    return np.concatenate([points.min(0), points.max(0)])


def clip_to_image(polygon: np.ndarray, width: int, height: int) -> np.ndarray:
    """The part of a convex polygon inside [0, W-1] x [0, H-1] (unchanged when already inside)."""
    inside = (polygon >= 0).all() and (polygon[:, 0] <= width - 1).all() and (polygon[:, 1] <= height - 1).all()
    if inside:
        return polygon
    frame = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], np.float32)
    area, clipped = cv2.intersectConvexConvex(polygon.astype(np.float32), frame)
    if area <= 0 or clipped is None:
        return np.zeros((0, 2))
    return np.clip(clipped.reshape(-1, 2).astype(np.float64), 0, [width - 1, height - 1])


def densify(polygon: np.ndarray, min_points: int) -> np.ndarray:
    """Split the longest edges at their midpoints until the polygon has `min_points` points (same shape)."""
    polygon = np.asarray(polygon, dtype=np.float64)
    while 0 < len(polygon) < min_points:
        i = int(np.argmax(np.linalg.norm(np.roll(polygon, -1, 0) - polygon, axis=1)))
        polygon = np.insert(polygon, i + 1, (polygon[i] + polygon[(i + 1) % len(polygon)]) / 2, axis=0)
    return polygon


def polygon_area(polygon: np.ndarray) -> float:
    if len(polygon) < 3:
        return 0.0
    x, y = polygon[:, 0], polygon[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def ellipse(centre, rx: float, ry: float, angle: float = 0.0, n: int = 24) -> np.ndarray:
    """(n, 2) points on an ellipse with radii (rx, ry), rotated by angle (radians)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    u, v = rx * np.cos(t), ry * np.sin(t)
    c, s = np.cos(angle), np.sin(angle)
    return np.asarray(centre, float) + np.stack([u * c + v * s, -u * s + v * c], axis=1)
