"""Rendering: shapes drawn into additive density layers, then an X-ray-like look (contrast, blur, noise)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Within a layer later shapes overwrite earlier ones; layers add up, as densities do along a ray.
LAYERS = ("soft", "bone", "overlay", "rim", "implant")
_SHIFT = 4  # cv2 sub-pixel bits: outlines are drawn to 1/16 px


@dataclass
class Shape:
    points: np.ndarray  # (N, 2) image (x, y)
    value: float
    layer: str = "bone"
    thickness: int = 0  # 0: filled polygon; > 0: polyline of that width in pixels
    closed: bool = False  # polyline joins its last point to its first


def stroke_width(pixels: float) -> int:
    """A polyline width in whole pixels, at least 1."""
    return max(1, int(round(pixels)))


@dataclass
class Look:
    """Per-image rendering parameters, all drawn from the config's ranges."""

    tissue: float  # soft-tissue density inside the body silhouette
    bone: float  # vertebral-body density: the bone/soft-tissue contrast
    texture: float  # relative strength of the trabecular texture
    shading: float  # relative strength of the low-frequency exposure field
    window: tuple[float, float]  # normalised intensities mapped to black and white
    gamma: float
    blur: float  # Gaussian sigma, pixels
    noise: float  # additive Gaussian noise sigma
    quantum: float  # signal-dependent (Poisson-like) noise sigma at full white

    @classmethod
    def sample(cls, rng: np.random.Generator, config, pixel_scale: float) -> Look:
        return cls(
            tissue=rng.uniform(*config.tissue_range),
            bone=rng.uniform(*config.contrast_range),
            texture=rng.uniform(*config.texture_range),
            shading=rng.uniform(0.1, 0.3),
            window=(rng.uniform(0.0, 0.15), rng.uniform(0.9, 1.1)),
            gamma=rng.uniform(*config.gamma_range),
            blur=rng.uniform(*config.blur_range) * pixel_scale,
            noise=rng.uniform(*config.noise_range),
            quantum=rng.uniform(*config.quantum_noise_range),
        )


def _draw(canvas: np.ndarray, shape: Shape) -> None:
    points = [np.round(shape.points * (1 << _SHIFT)).astype(np.int32)]
    if shape.thickness:
        cv2.polylines(canvas, points, shape.closed, float(shape.value), int(shape.thickness), cv2.LINE_8, _SHIFT)
    else:
        cv2.fillPoly(canvas, points, float(shape.value), cv2.LINE_8, _SHIFT)


def _smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """Large-sigma Gaussian blur, computed at quarter resolution."""
    h, w = image.shape
    small = cv2.resize(image, (max(w // 4, 1), max(h // 4, 1)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), max(sigma / 4, 0.5))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def render(shapes: list[Shape], height: int, width: int, look: Look, rng: np.random.Generator) -> np.ndarray:
    """Draw the shapes and turn the summed densities into an 8-bit radiograph (bright = dense)."""
    layers = {name: np.zeros((height, width), np.float32) for name in LAYERS}
    for shape in shapes:
        _draw(layers[shape.layer], shape)

    shading = cv2.resize(rng.uniform(-1, 1, (4, 4)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    soft = (_smooth(layers["soft"], 0.02 * height) + 0.03) * (1 + look.shading * shading)
    texture = cv2.GaussianBlur(rng.standard_normal((height, width), dtype=np.float32), (0, 0), 1.2 * height / 512)
    texture *= look.texture / max(float(texture.std()), 1e-6)
    density = soft + (layers["bone"] + layers["overlay"]) * (1 + texture) + layers["rim"]

    # Normalise by a high percentile so bright overlaps (skull, pelvis) saturate only a little; metal saturates.
    image = density / max(float(np.percentile(density[::4, ::4], 99.5)), 1e-6) + layers["implant"]
    low, high = look.window
    image = np.clip((image - low) / (high - low), 0, 1) ** look.gamma
    image = cv2.GaussianBlur(image, (0, 0), look.blur)
    noise = rng.standard_normal((height, width), dtype=np.float32)
    image += noise * (look.noise + look.quantum * np.sqrt(image))
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
