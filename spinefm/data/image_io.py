"""Read radiographs (JPEG, PNG, TIFF, DICOM) as 2-D greyscale arrays in their original bit depth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from spinefm.data.problems import DataError, Problem

DICOM_SUFFIXES = {".dcm", ".dicom"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", *sorted(DICOM_SUFFIXES))


@dataclass
class LoadedImage:
    pixels: np.ndarray
    spacing_mm: tuple[float, float] | None = None
    inverted: bool = False


def read_image(path, image_id: str | None = None, auto_invert: bool = False) -> LoadedImage:
    """Read one image; raises DataError naming the file when it is missing or unreadable.

    RGB images become greyscale; DICOM gets its modality rescale, MONOCHROME1 inversion and
    pixel spacing; with `auto_invert`, an image whose background is brighter than its centre
    (white-background films) is inverted back.
    """
    path = Path(path)
    image_id = image_id or path.stem
    if not path.is_file():
        raise DataError(Problem("missing_image", image_id, "image file not found", path=str(path)))
    try:
        loaded = _read_dicom(path) if is_dicom(path) else LoadedImage(_read_raster(path))
    except DataError:
        raise
    except Exception as error:  # every decoder failure is the same problem to the user
        raise DataError(Problem("unreadable_image", image_id, f"cannot decode: {error}", path=str(path))) from error
    pixels = loaded.pixels
    if pixels.ndim != 2 or min(pixels.shape) == 0:
        raise DataError(
            Problem("unreadable_image", image_id, f"not a 2-D image (shape {pixels.shape})", path=str(path))
        )
    if auto_invert and looks_inverted(pixels):
        loaded = LoadedImage(invert(pixels), loaded.spacing_mm, inverted=not loaded.inverted)
    return loaded


def read_image_size(path, image_id: str | None = None) -> tuple[int, int]:
    """(height, width) from the file header where possible, without decoding the pixels."""
    path = Path(path)
    try:
        if is_dicom(path):
            import pydicom

            header = pydicom.dcmread(path, stop_before_pixels=True)
            return int(header.Rows), int(header.Columns)
        from PIL import Image

        with Image.open(path) as image:
            return image.size[1], image.size[0]
    except Exception:  # unknown header: decode (and report the file properly if that fails too)
        return read_image(path, image_id).pixels.shape


def is_dicom(path: Path) -> bool:
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    with open(path, "rb") as handle:
        handle.seek(128)
        return handle.read(4) == b"DICM"


def _read_raster(path: Path) -> np.ndarray:
    buffer = np.fromfile(path, dtype=np.uint8)
    pixels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    if pixels is None:
        raise ValueError("not an image file or truncated")
    if pixels.ndim == 3:
        pixels = _to_grey(pixels[..., :3])
    return pixels


def _to_grey(colour: np.ndarray) -> np.ndarray:
    if np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 1], colour[..., 2]):
        return np.ascontiguousarray(colour[..., 0])
    return cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)


def _read_dicom(path: Path) -> LoadedImage:
    import pydicom
    from pydicom.pixels import apply_modality_lut

    dataset = pydicom.dcmread(path)
    pixels = dataset.pixel_array
    if getattr(dataset, "SamplesPerPixel", 1) == 3:
        pixels = _to_grey(pixels[..., ::-1])  # DICOM stores RGB, OpenCV expects BGR
    elif pixels.ndim == 3:
        pixels = pixels[0]  # multi-frame: the first frame is the radiograph
    if any(tag in dataset for tag in ("RescaleSlope", "RescaleIntercept", "ModalityLUTSequence")):
        pixels = apply_modality_lut(pixels, dataset).astype(np.float32)
    inverted = str(getattr(dataset, "PhotometricInterpretation", "")).upper() == "MONOCHROME1"
    if inverted:
        pixels = invert(pixels)
    spacing = getattr(dataset, "PixelSpacing", None) or getattr(dataset, "ImagerPixelSpacing", None)
    spacing_mm = (float(spacing[0]), float(spacing[1])) if spacing else None
    return LoadedImage(pixels, spacing_mm, inverted)


def invert(pixels: np.ndarray) -> np.ndarray:
    """Swap dark and bright, keeping dtype and range (full range for 8-bit, data range otherwise)."""
    if pixels.dtype == np.uint8:
        return 255 - pixels
    lo, hi = pixels.min(), pixels.max()
    return (hi - (pixels - lo)).astype(pixels.dtype)


def looks_inverted(pixels: np.ndarray, border_fraction: float = 0.05) -> bool:
    """True when the image border (air in a normal radiograph) is brighter than its centre."""
    h, w = pixels.shape
    bh, bw = max(1, int(h * border_fraction)), max(1, int(w * border_fraction))
    border = np.concatenate(
        [pixels[:bh].ravel(), pixels[-bh:].ravel(), pixels[:, :bw].ravel(), pixels[:, -bw:].ravel()]
    )
    centre = pixels[h // 4 : h - h // 4, w // 4 : w - w // 4]
    return float(np.median(border)) > float(np.median(centre))


def find_image(directory: Path, stem: str) -> Path | None:
    """The image file named `stem` with any supported suffix, or None."""
    for suffix in IMAGE_SUFFIXES:
        for candidate in (directory / f"{stem}{suffix}", directory / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None
