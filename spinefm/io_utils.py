"""Atomic file writes: a crash never leaves a half-written output behind."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write_bytes(path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temp, 0o666 & ~_UMASK)  # mkstemp makes files private; outputs get the usual mode
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path, payload) -> Path:
    """Strict JSON: NaN and infinities (a missing figure, a point that left the image) become null."""
    return atomic_write_bytes(
        path, (json.dumps(_finite(payload), indent=2, default=_jsonable, allow_nan=False) + "\n").encode()
    )


def _finite(value):
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


def atomic_write_csv(path, rows, columns) -> Path:
    """A CSV file with a header of `columns` and one line per row: a dict keyed by
    column (a missing key or None is an empty cell; a key not in `columns` raises ValueError)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_bytes(path, buffer.getvalue().encode())


def atomic_write_png(path, pixels: np.ndarray) -> Path:
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise ValueError(f"cannot encode {pixels.dtype} array of shape {pixels.shape} as PNG for {path}")
    return atomic_write_bytes(path, encoded.tobytes())


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
