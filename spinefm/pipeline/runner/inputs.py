"""What `infer.py input=...` names, as a sorted list of films with stable ids.

An input is one image file, a folder, or a `.txt` list file:
- a folder is searched recursively; a file is a film when its suffix is one of
  `spinefm.data.image_io.IMAGE_SUFFIXES` (any case) or it is a DICOM file (`is_dicom`: the DICM tag,
  whatever its name, e.g. `IM0001` or `1.2.840.5`). Hidden files and folders and anything under
  `exclude` (the output folder, when it lies inside the input folder) are left out;
- a list file holds one path per line (blank lines and lines starting with `#` ignored), relative
  to the list's folder unless absolute; a missing or unreadable entry is kept, so the run reports it.

An input's id is its path relative to the folder (the list's folder; a single file's folder) without
the suffix, in POSIX form (`spine/a.png` -> `spine/a`); outputs are named after it. Where two inputs
would share an id (`a.png` and `a.dcm`), both keep their suffix (`a.png`, `a.dcm`); a path outside
the list's folder uses its file name. A source that does not exist or names no film is a
FileNotFoundError (`infer.py` reports it in one line).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from spinefm.data.image_io import IMAGE_SUFFIXES, is_dicom

LIST_SUFFIXES = (".txt",)


@dataclass(frozen=True)
class InputImage:
    id: str
    path: Path


def find_inputs(source, exclude=None) -> list[InputImage]:
    """The films `source` names (a file, folder or list file), sorted by id. FileNotFoundError when
    `source` does not exist or names no film."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(
            f"input {source} does not exist: name an image, a folder of images or a .txt list of paths"
        )
    if source.is_dir():
        base, paths = source, list(_folder_images(source, Path(exclude) if exclude else None))
        if not paths:
            raise FileNotFoundError(
                f"no images in {source}: searched it recursively for {' '.join(IMAGE_SUFFIXES)} (any case) "
                "and DICOM files of any name"
            )
    elif source.suffix.lower() in LIST_SUFFIXES:
        base, paths = source.parent, _listed(source)
        if not paths:
            raise FileNotFoundError(f"no images in {source}: a list file names one image path per line")
    else:
        base, paths = source.parent, [source]
    return sorted(_with_ids(base, paths), key=lambda item: item.id)


def _folder_images(folder: Path, exclude: Path | None):
    exclude = exclude.resolve() if exclude else None
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if exclude is not None and path.resolve().is_relative_to(exclude):
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES or _is_dicom(path):
            yield path


def _is_dicom(path: Path) -> bool:
    try:
        return is_dicom(path)
    except OSError:
        return False


def _listed(list_file: Path) -> list[Path]:
    lines = (line.strip() for line in list_file.read_text().splitlines())
    paths = [list_file.parent / line for line in lines if line and not line.startswith("#")]
    return list(dict.fromkeys(paths))  # a path listed twice is one input


def _with_ids(base: Path, paths: list[Path]) -> list[InputImage]:
    relative = [_relative(path, base) for path in paths]
    stems = [r.with_suffix("").as_posix() for r in relative]
    counts = Counter(stems)
    return [
        InputImage(stem if counts[stem] == 1 else r.as_posix(), path) for stem, r, path in zip(stems, relative, paths)
    ]


def _relative(path: Path, base: Path) -> Path:
    try:
        return path.resolve().relative_to(base.resolve())
    except ValueError:
        return Path(path.name)
