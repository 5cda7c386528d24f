"""Run the inductive loop over every film an input names, writing `outputs` per film and a summary.

Resumable: a film whose instances JSON exists is skipped (unless `overwrite`). A film that cannot be
used (missing, unreadable, empty, smaller than `min_side` on a side, over `max_pixels`) or whose
inference raises is reported by id with the reason and the run goes on. `summary.json` in the
output folder lists processed, skipped (already done) and failed films and the run's seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from spinefm.data.image_io import read_image, read_image_size
from spinefm.data.problems import DataError
from spinefm.io_utils import atomic_write_json
from spinefm.pipeline.inputs import InputImage, find_inputs
from spinefm.pipeline.loop import InductiveLoop
from spinefm.pipeline.outputs import is_done, write_outputs


class Unusable(Exception):
    """A film the run skips, with the reason it reports."""


@dataclass
class RunSettings:
    """auto_invert: invert films whose border is brighter than their centre (`image_io.looks_inverted`).
    overlay: {max_side (px, long side), alpha (mask opacity)}."""

    min_side: int = 64
    max_pixels: int = 100_000_000
    auto_invert: bool = True
    overwrite: bool = False
    progress_bar: bool = True
    overlay: dict = field(default_factory=lambda: {"max_side": 2048, "alpha": 0.4})


def run_inputs(loop: InductiveLoop, source, output_dir, view: str | None, settings: RunSettings) -> dict:
    """Infer every film under `source` into `output_dir`; returns (and writes) the summary."""
    output_dir = Path(output_dir)
    start = time.perf_counter()
    inputs = find_inputs(source, exclude=output_dir)
    summary = {"input": str(source), "output": str(output_dir), "total": len(inputs), "processed": [], "skipped": [], "failed": []}
    for item in tqdm(inputs, desc="infer", unit="film", disable=not settings.progress_bar):
        if not settings.overwrite and is_done(output_dir, item.id):
            summary["skipped"].append(item.id)
            continue
        try:
            _infer_one(loop, item, output_dir, view, settings)
            summary["processed"].append(item.id)
        except Unusable as problem:
            summary["failed"].append({"id": item.id, "path": str(item.path), "reason": str(problem)})
        except Exception as error:  # one film's failure never ends the run
            summary["failed"].append({"id": item.id, "path": str(item.path), "reason": f"inference failed: {type(error).__name__}: {error}"})
    summary["seconds"] = round(time.perf_counter() - start, 3)
    atomic_write_json(output_dir / "summary.json", summary)
    return summary


def _infer_one(loop: InductiveLoop, item: InputImage, output_dir: Path, view: str | None, settings: RunSettings) -> None:
    loaded = _load(item, settings)
    result = loop.run(loaded.pixels, view=view, image_id=item.id)
    info = {"file": str(item.path), "inverted": loaded.inverted, "spacing_mm": loaded.spacing_mm}
    write_outputs(output_dir, result, loaded.pixels, info, settings.overlay)


def _load(item: InputImage, settings: RunSettings):
    try:
        if item.path.is_file() and item.path.stat().st_size == 0:
            raise Unusable("empty file")
        height, width = read_image_size(item.path, item.id)
        _check_size(height, width, settings)
        loaded = read_image(item.path, item.id, auto_invert=settings.auto_invert)
    except DataError as error:
        raise Unusable(f"{error.problem.kind}: {error.problem.message}") from error
    _check_size(*loaded.pixels.shape, settings)  # the header may not tell the decoded size
    return loaded


def _check_size(height: int, width: int, settings: RunSettings) -> None:
    if min(height, width) < settings.min_side:
        raise Unusable(f"too small: {height} x {width} px, a side under min_side={settings.min_side}")
    if height * width > settings.max_pixels:
        raise Unusable(f"too large: {height} x {width} px over max_pixels={settings.max_pixels}")


def format_summary(summary: dict) -> str:
    lines = [
        f"{summary['total']} films: {len(summary['processed'])} processed, {len(summary['skipped'])} skipped (already done), "
        f"{len(summary['failed'])} failed, {summary['seconds']:.1f} s -> {summary['output']}"
    ]
    lines += [f"  failed {f['id']}: {f['reason']}" for f in summary["failed"]]
    return "\n".join(lines)
