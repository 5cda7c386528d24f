"""Synthetic spine radiograph phantoms with exact vertebra outlines: the public entry point and its config."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from spinefm.data.levels import is_level
from spinefm.data.record import VIEWS, ImageRecord, Vertebra
from spinefm.settings import check_fractions
from spinefm.synthetic.anatomy import spine_shapes
from spinefm.synthetic.context import context_shapes
from spinefm.synthetic.framing import frame_spine
from spinefm.synthetic.geometry import (
    Body,
    BodyPlan,
    body_corners,
    clip_to_image,
    densify,
    polygon_area,
    rounded_polygon,
    tangent_function,
)
from spinefm.synthetic.implants import implant_shapes
from spinefm.synthetic.render import Look, render
from spinefm.synthetic.views import VIEW_SPECS, ViewSpec

# Mean relative anterior-minus-posterior height on laterals: lordotic lower lumbar, kyphotic thoracic.
_LATERAL_WEDGE = {"T11": -0.06, "T12": -0.06, "L4": 0.08, "L5": 0.15}


@dataclass
class PhantomConfig:
    """Every knob of the generator; ranges are (low, high) drawn uniformly per image. Pixel sizes are at 512 px."""

    image_size: int = 512  # long side (height) in pixels
    views: tuple[str, ...] = VIEWS
    t1_probability: float = 0.4  # lateral cervical films with T1 annotated
    implant_probability: float = 0.1
    cutoff_probability: float = 0.15
    cutoff_depth_range: tuple[float, float] = (0.3, 2.0)  # vertebrae a cut-off spine runs past the border
    min_visible_fraction: float = 0.6  # annotated bodies less inside the image than this are dropped
    cobb_range: tuple[float, float] = (0.0, 50.0)  # AP: degrees the centre line turns through over T1..L5
    cervical_lordosis_range: tuple[float, float] = (-10.0, 40.0)
    lumbar_lordosis_range: tuple[float, float] = (20.0, 60.0)
    sacral_tilt_range: tuple[float, float] = (5.0, 20.0)  # laterals: extra tilt of the sacrum, degrees
    tilt_range: tuple[float, float] = (-5.0, 5.0)  # whole spine, degrees from vertical
    rotation_jitter: float = 2.5  # SD of each body's own rotation, degrees
    size_jitter: float = 0.05  # relative SD of each body's height and width
    person_scale_range: tuple[float, float] = (0.85, 1.15)  # anatomy size: sets mm per pixel
    body_aspect_range: tuple[float, float] = (0.9, 1.1)  # width / height of all bodies relative to nominal
    disc_scale_range: tuple[float, float] = (0.35, 1.2)  # disc heights relative to nominal (low: degenerate)
    wedge_sd: float = 0.06  # SD of each body's relative height difference between its sides
    roundness_range: tuple[float, float] = (0.1, 0.3)  # corner radius / smaller body side
    corner_points_range: tuple[int, int] = (4, 9)  # outline points per corner (4 corners)
    min_gap_px: float = 1.5  # least gap between neighbouring outlines
    tissue_range: tuple[float, float] = (0.25, 0.5)  # soft-tissue density
    contrast_range: tuple[float, float] = (0.1, 0.5)  # bone density over soft tissue
    texture_range: tuple[float, float] = (0.05, 0.2)  # trabecular texture strength
    gamma_range: tuple[float, float] = (0.7, 1.4)
    blur_range: tuple[float, float] = (0.4, 1.5)  # Gaussian sigma, pixels
    noise_range: tuple[float, float] = (0.005, 0.04)  # Gaussian noise SD (intensity 0..1)
    quantum_noise_range: tuple[float, float] = (0.0, 0.04)  # signal-dependent noise SD at white

    def __post_init__(self):
        for f in fields(self):  # Hydra hands sequences over as lists
            value = getattr(self, f.name)
            if isinstance(value, (list, tuple)):
                setattr(self, f.name, tuple(value))
                if f.name != "views" and (len(value) != 2 or value[0] > value[1]):
                    raise ValueError(f"{f.name} must be a (low, high) pair, got {value!r}")
        unknown = [v for v in self.views if v not in VIEW_SPECS]
        if unknown or not self.views:
            raise ValueError(f"unknown or no views {unknown!r}; expected some of {VIEWS}")
        check_fractions(self, ("t1_probability", "implant_probability", "cutoff_probability", "min_visible_fraction"))
        if self.image_size < 128:
            raise ValueError("image_size must be at least 128 pixels")


def _plans(spec: ViewSpec, config: PhantomConfig, with_t1: bool, rng: np.random.Generator) -> list[BodyPlan]:
    """Sample each body's size, outline and disc space in mm."""
    person, aspect = rng.uniform(*config.person_scale_range), rng.uniform(*config.body_aspect_range)
    discs, roundness = rng.uniform(*config.disc_scale_range), rng.uniform(*config.roundness_range)
    corner_points = int(rng.integers(config.corner_points_range[0], config.corner_points_range[1] + 1))
    sacral_tilt = np.radians(rng.uniform(*config.sacral_tilt_range)) if spec.lateral else 0.0
    plans = []
    for body in spec.bodies:
        jitter = np.clip(rng.normal(1.0, config.size_jitter, 2), 0.8, 1.2)
        height, width = body.height_mm * person * jitter[0], body.width_mm * person * aspect * jitter[1]
        fused = body.kind == "sacral" and body.name != "S1"
        gap = body.gap_mm * person * (1.0 if fused else discs * np.clip(rng.normal(1.0, 0.15), 0.6, 1.4))
        wedge = (_LATERAL_WEDGE.get(body.name, 0.0) if spec.lateral else 0.0) + rng.normal(0.0, config.wedge_sd)
        corners = body_corners(body.kind, height, width, wedge, rng.normal(0.0, 0.03))
        outline = rounded_polygon(corners, roundness * min(height, width) * rng.uniform(0.8, 1.2), corner_points)
        tilt = np.radians(rng.normal(0.0, config.rotation_jitter)) + (sacral_tilt if body.kind == "sacral" else 0.0)
        role = ("annotated" if with_t1 else "context") if body.role == "optional" else body.role
        plans.append(BodyPlan(body.name, body.kind, role, outline, width, height, gap, tilt))
    return plans


def _annotate(bodies: list[Body], width: int, height: int, mirror: bool, config: PhantomConfig):
    """Vertebrae for the annotated bodies enough inside the image (clipped to it), top to bottom.

    Returns them, their bodies, the levels drawn but not annotated, and the annotated levels dropped
    for lying mostly outside the image.
    """
    vertebrae, kept, unannotated, dropped = [], [], [], []
    for body in bodies:
        polygon = body.polygon
        clipped = clip_to_image(polygon, width, height)
        visible = polygon_area(clipped) / polygon_area(polygon)
        if body.role == "annotated" and visible >= config.min_visible_fraction:
            if mirror:
                clipped = clipped * (-1, 1) + (width - 1, 0)
            # clipping can drop outline points: keep at least as many as an unclipped outline has
            vertebrae.append(Vertebra(body.name, polygon=densify(clipped, 4 * config.corner_points_range[0])))
            kept.append(body)
            continue
        if is_level(body.name) and visible > 0:
            unannotated.append(body.name)
        if body.role == "annotated":
            dropped.append(body.name)
    return vertebrae, kept, unannotated, dropped


def generate_phantom(
    seed: int, config: PhantomConfig | None = None, view: str | None = None, image_id: str | None = None
) -> ImageRecord:
    """One synthetic radiograph with its annotated vertebrae, deterministic in `seed`.

    view=None draws the view from config.views. Annotated outlines are exact: the bodies are
    rendered from the returned polygons (clipped to the image where a cut-off end crosses it).
    meta: seed; cut_off ("top", "bottom" or None); dropped_levels (annotated levels lost to the cut-off);
    unannotated_levels (drawn, at least partly visible, not annotated); implant, implant_levels;
    bend_deg (sampled Cobb-like angle or lordosis); max_tilt_deg and angle_range_deg of the annotated
    bodies' endplates; facing (laterals: side the anterior faces); look (rendering parameters).
    """
    config = config or PhantomConfig()
    rng = np.random.default_rng(seed)
    view = view or config.views[int(rng.integers(len(config.views)))]
    if view not in VIEW_SPECS:
        raise ValueError(f"unknown view {view!r}; expected one of {VIEWS}")
    spec = VIEW_SPECS[view]
    height = int(config.image_size)
    width = int(round(height * rng.uniform(*spec.aspect)))
    pixel_scale = height / 512

    with_t1 = rng.random() < config.t1_probability
    plans = _plans(spec, config, with_t1, rng)
    bend_range = {
        "lateral_cervical": config.cervical_lordosis_range,
        "lateral_lumbar": config.lumbar_lordosis_range,
        "ap_thoracolumbar": config.cobb_range,
    }[view]
    bend = rng.uniform(*bend_range)
    tangent = tangent_function(spec.lateral, bend, rng)
    cut = str(rng.choice(["top", "bottom"])) if rng.random() < config.cutoff_probability else None
    bodies, px_per_mm = frame_spine(
        plans,
        tangent,
        spec,
        width,
        height,
        tilt=np.radians(rng.uniform(*config.tilt_range)),
        cut=cut,
        cut_depth=rng.uniform(*config.cutoff_depth_range),
        min_gap_px=config.min_gap_px * pixel_scale,
        rng=rng,
    )

    look = Look.sample(rng, config, pixel_scale)
    shapes = context_shapes(view, bodies, look, width, height, rng) + spine_shapes(bodies, spec.lateral, look, rng)
    implant_levels: list[str] = []
    if rng.random() < config.implant_probability:
        metal, implant_levels = implant_shapes(view, bodies, rng)
        shapes += metal
    image = render(shapes, height, width, look, rng)

    facing = ("right" if rng.random() < 0.5 else "left") if spec.lateral else None
    if facing == "right":  # drawn with anterior to the left; mirror half of the laterals
        image = np.ascontiguousarray(image[:, ::-1])
    vertebrae, kept, unannotated, dropped = _annotate(bodies, width, height, facing == "right", config)
    if view == "lateral_cervical":
        unannotated.insert(0, "C1")
    angles = np.degrees([b.angle for b in kept])
    return ImageRecord(
        id=image_id or f"synthetic_{seed:06d}",
        vertebrae=vertebrae,
        image=image,
        view=view,
        spacing_mm=(float(1.0 / px_per_mm), float(1.0 / px_per_mm)),
        meta={
            "seed": seed,
            "cut_off": cut,
            "dropped_levels": dropped,
            "unannotated_levels": unannotated,
            "implant": bool(implant_levels),
            "implant_levels": implant_levels,
            "bend_deg": float(bend),
            "max_tilt_deg": float(np.abs(angles).max()),
            "angle_range_deg": float(np.ptp(angles)),
            "facing": facing,
            "look": asdict(look),
        },
    )
