"""The manifest of a `train.py experiment=train_all` run: {dataset, components: {stage: checkpoints}}."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from spinefm.errors import UserError

ENTRY = '{"best_checkpoint": PATH, "last_checkpoint": PATH}'  # a stage's entry under components
TRAIN_HINT = "train first: python train.py experiment=train_all (experiment=train_all_tiny: minutes on a CPU)"


def find_manifest(name, search_root) -> Path:
    """`name` as a path, or for "latest" the newest manifest.json under `search_root` (where
    `train.py experiment=train_all` writes its runs)."""
    if str(name) != "latest":
        return Path(name)
    found = sorted(Path(search_root).glob("**/manifest.json"), key=lambda path: path.stat().st_mtime)
    if not found:
        raise FileNotFoundError(
            f"pipeline.checkpoints=latest: no manifest.json under {search_root}; {TRAIN_HINT}, "
            "or name one with pipeline.checkpoints=PATH"
        )
    return found[-1]


def manifest_name(manifest) -> str:
    """A manifest as messages name it: by its path (the dict `load_named_loop` reads carries it as "path")."""
    path = manifest.get("path") if isinstance(manifest, Mapping) else manifest
    return f"checkpoint manifest {path}" if path else "the checkpoint manifest"


def shown(value, limit: int = 80) -> str:
    """A JSON value as a message quotes it, cut in the middle to `limit` characters (a path keeps its end)."""
    text = json.dumps(value)
    return text if len(text) <= limit else f"{text[: limit // 3]}...{text[-(limit - limit // 3 - 3) :]}"


def read_manifest(manifest) -> dict:
    """A manifest.json (path), or its already-read dict. A file that is not a JSON object raises an
    error naming it (`UserError`)."""
    if isinstance(manifest, Mapping):
        return dict(manifest)
    path = Path(manifest)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint manifest {path} not found; fix the path or {TRAIN_HINT}")
    try:
        data = json.loads(path.read_text())
    except (ValueError, OSError) as error:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UserError(
            f"checkpoint manifest {path} is not readable JSON ({type(error).__name__}: {error}); expected the "
            f"manifest.json of a train.py experiment=train_all run: fix the file or {TRAIN_HINT}"
        ) from error
    if not isinstance(data, dict) or not isinstance(data.get("dataset", {}), dict | None):
        what = f"a dataset {shown(data['dataset'])}" if isinstance(data, dict) else shown(data)
        raise UserError(
            f"checkpoint manifest {path} holds {what}, expected an object "
            f'{{"dataset": {{...}}, "components": {{stage: {ENTRY}}}}}: fix the file or {TRAIN_HINT}'
        )
    return data


def checkpoint_paths(manifest, which: str = "best") -> dict[str, str]:
    """Stage name -> checkpoint path (`best` or `last`, the best falling back to the last). A manifest
    listing none, or not as train.py writes them, raises an error naming it (`UserError`)."""
    components = read_manifest(manifest).get("components") or {}
    name = manifest_name(manifest)
    if not isinstance(components, Mapping):
        raise UserError(f"{name}: components is {shown(components)}, expected an object {{stage: {ENTRY}}}")
    if not components:
        raise UserError(f"{name} lists no checkpoint (its components are empty); {TRAIN_HINT}")
    paths = {}
    for stage, entry in components.items():
        if not isinstance(entry, Mapping):
            what = f"the string {shown(entry)}" if isinstance(entry, str) else shown(entry)
            path = "that path" if isinstance(entry, str) else "PATH"
            raise UserError(
                f'{name}: components.{stage} is {what}, expected an object {ENTRY}; write it as "{stage}": '
                f'{{"best_checkpoint": {path}}}'
            )
        keys = ("last_checkpoint",) if which == "last" else ("best_checkpoint", "last_checkpoint")
        path = next((entry[key] for key in keys if entry.get(key)), None)
        if not isinstance(path, str):
            raise UserError(
                f"{name}: components.{stage} has no {which} checkpoint (a path in {' or '.join(keys)}); "
                f"it holds {shown(dict(entry))}"
            )
        paths[stage] = path
    return paths
