"""The manifest of a `train.py experiment=train_all` run: {dataset, components: {stage: checkpoints}}."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

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


def read_manifest(manifest) -> dict:
    """A manifest.json (path), or its already-read dict."""
    if isinstance(manifest, Mapping):
        return dict(manifest)
    path = Path(manifest)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint manifest {path} not found; fix the path or {TRAIN_HINT}")
    return json.loads(path.read_text())


def checkpoint_paths(manifest, which: str = "best") -> dict[str, str]:
    """Stage name -> checkpoint path (`best` or `last`, the best falling back to the last)."""
    components = read_manifest(manifest).get("components") or {}
    if not components:
        raise ValueError(f"the manifest lists no checkpoint; {TRAIN_HINT}")
    paths = {}
    for name, entry in components.items():
        path = (
            entry.get("last_checkpoint")
            if which == "last"
            else entry.get("best_checkpoint") or entry.get("last_checkpoint")
        )
        if not path:
            raise ValueError(f"the manifest's {name} entry has no {which} checkpoint")
        paths[name] = path
    return paths
