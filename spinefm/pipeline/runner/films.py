"""The films an inference run reads: each input loaded and checked, or the reason it cannot be used.

An input is an `InputImage` (a file `infer.py` found) or an `ImageRecord` (a dataset's film, as
`evaluate.py` runs them; its view and spacing come along). A film is unusable when it is missing,
unreadable, empty, smaller than `min_side` on a side or over `max_pixels` (checked from the header
before decoding where the format allows). A film whose
outputs exist is marked done (resume) without being read. Loading happens in `FilmDataset`, so
DataLoader workers read films ahead of the loop and each rank of a distributed run reads only its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from spinefm.data.image_io import read_image, read_image_size
from spinefm.data.problems import DataError
from spinefm.data.record import ImageRecord
from spinefm.pipeline.io.format import is_done
from spinefm.pipeline.runner.inputs import InputImage


@dataclass
class FilmSettings:
    """auto_invert: invert films whose border is brighter than their centre (`image_io.looks_inverted`).
    overwrite: False skips films whose outputs exist."""

    min_side: int = 64
    max_pixels: int = 100_000_000
    auto_invert: bool = True
    overwrite: bool = False


@dataclass
class LoadedFilm:
    """One input as the run sees it: `pixels` when usable; otherwise `done` (outputs exist) or `problem`."""

    id: str
    path: Path | None
    pixels: np.ndarray | None = None
    view: str | None = None
    inverted: bool = False
    spacing_mm: tuple[float, float] | None = None
    done: bool = False
    problem: str | None = None

    @property
    def info(self) -> dict:
        """What the instances JSON records about the film."""
        return {"file": str(self.path) if self.path else None, "inverted": self.inverted, "spacing_mm": self.spacing_mm}


class Unusable(Exception):
    """A film the run skips, with the reason it reports."""


def load_film(item: InputImage | ImageRecord, output_dir, settings: FilmSettings) -> LoadedFilm:
    path = item.image_path if isinstance(item, ImageRecord) else item.path
    if not settings.overwrite and is_done(output_dir, item.id):
        return LoadedFilm(item.id, path, done=True)
    try:
        loaded = _record_film(item) if isinstance(item, ImageRecord) else _file_film(item, settings)
        _check_size(*loaded.pixels.shape[:2], settings)  # the header may not tell the decoded size
    except DataError as error:
        return LoadedFilm(item.id, path, problem=f"{error.problem.kind}: {error.problem.message}")
    except Unusable as problem:
        return LoadedFilm(item.id, path, problem=str(problem))
    return loaded


def _record_film(record: ImageRecord) -> LoadedFilm:
    pixels = record.load_image()
    return LoadedFilm(
        record.id, record.image_path, pixels, record.view, bool(record.meta.get("inverted", False)), record.spacing_mm
    )


def _file_film(item: InputImage, settings: FilmSettings) -> LoadedFilm:
    """The file's film; empty files and sizes its header tells are refused before decoding."""
    if item.path.is_file() and item.path.stat().st_size == 0:
        raise Unusable("empty file")
    _check_size(*read_image_size(item.path, item.id), settings)
    loaded = read_image(item.path, item.id, auto_invert=settings.auto_invert)
    return LoadedFilm(item.id, item.path, loaded.pixels, None, loaded.inverted, loaded.spacing_mm)


def _check_size(height: int, width: int, settings: FilmSettings) -> None:
    if min(height, width) < settings.min_side:
        raise Unusable(f"too small: {height} x {width} px, a side under min_side={settings.min_side}")
    if height * width > settings.max_pixels:
        raise Unusable(f"too large: {height} x {width} px over max_pixels={settings.max_pixels}")


class FilmDataset(Dataset):
    """The inputs as `LoadedFilm`s, loaded on access; batches are plain lists (`collate`)."""

    def __init__(self, inputs: list[InputImage | ImageRecord], output_dir, settings: FilmSettings):
        self.inputs = inputs
        self.output_dir = Path(output_dir)
        self.settings = settings

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> LoadedFilm:
        return load_film(self.inputs[index], self.output_dir, self.settings)

    @staticmethod
    def collate(films: list[LoadedFilm]) -> list[LoadedFilm]:
        return films
