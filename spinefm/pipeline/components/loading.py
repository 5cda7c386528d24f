"""A loop assembled from a manifest's checkpoints: each checkpoint names its role and adapter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from spinefm.checkpoints import load_component
from spinefm.errors import UserError
from spinefm.pipeline.components import adapters  # noqa: F401  (registers the built-in adapters)
from spinefm.pipeline.components.manifest import checkpoint_paths, find_manifest, manifest_name, read_manifest
from spinefm.pipeline.components.roles import adapter_class
from spinefm.pipeline.core.loop import InductiveLoop
from spinefm.pipeline.core.loop_config import LoopConfig
from spinefm.pipeline.core.types import ALL_ROLES, OPTIONAL_ROLES, ROLES


@dataclass
class Components:
    """An adapter per role (each with `.info`, its checkpoint's `spinefm` entry; None for an optional
    role the manifest does not list) and the manifest's dataset identity."""

    detector: adapters.Adapter
    segmenter: adapters.Adapter
    predictor: adapters.Adapter
    classifier: adapters.Adapter
    dataset: dict
    level_mapper: adapters.Adapter | None = None


def load_components(manifest, device: str = "cpu", which: str = "best", overrides: Mapping | None = None) -> Components:
    """An adapter per role from a manifest. overrides: {stage name: adapter keyword arguments}, e.g.
    {"maskrcnn": {"score_threshold": 0.5}, "medsa": {"batch_size": 4, "model_overrides": {...}}}."""
    paths = checkpoint_paths(manifest, which)
    overrides = {name: dict(value) for name, value in (overrides or {}).items() if value}
    loaded = {
        name: load_component(path, overrides.get(name, {}).pop("model_overrides", None)) for name, path in paths.items()
    }
    by_role = {role: [name for name, (_, info) in loaded.items() if info["role"] == role] for role in ALL_ROLES}
    wrong = [
        f"{len(names)} {role}s ({', '.join(names)})" if names else f"no {role}"
        for role, names in by_role.items()
        if len(names) > 1 or (not names and role in ROLES)
    ]
    if wrong:
        raise UserError(
            f"{manifest_name(manifest)} needs exactly one checkpoint per role ({', '.join(ROLES)}; at most one "
            f"{', '.join(OPTIONAL_ROLES)}); it has {', '.join(wrong)}: list one component per role under its components"
        )
    unknown = sorted(set(overrides) - set(paths))
    if unknown:
        raise UserError(
            f"overrides for {unknown}, which {manifest_name(manifest)} does not list; it lists {sorted(paths)}: "
            "give settings for those only"
        )
    adapters_by_role = {}
    for role, names in by_role.items():
        for name in names:
            model, info = loaded[name]
            adapters_by_role[role] = adapter_class(info["adapter"]).from_loaded(
                model, info, device, **overrides.get(name, {})
            )
    return Components(**adapters_by_role, dataset=dict(read_manifest(manifest).get("dataset") or {}))


def load_loop(
    manifest,
    config: LoopConfig | Mapping | None = None,
    device: str = "cpu",
    which: str = "best",
    overrides: Mapping | None = None,
) -> InductiveLoop:
    """An InductiveLoop on a manifest's checkpoints (with a level map where it lists one). Settings
    missing from `config` come from them: mask_threshold and final_threshold from Med-SA's inference,
    the label end levels and level counts from the classifier's and the level range from the dataset
    the components were trained on."""
    c = load_components(manifest, device, which, overrides)
    if not isinstance(config, LoopConfig):
        masks = c.segmenter.info["inference"]
        thresholds = {"mask_threshold": masks["mask_threshold"], "final_threshold": masks.get("final_threshold")}
        config = LoopConfig(**{**thresholds, **dict(config or {})})
    labels, classifier = config.labels, c.classifier.info["inference"]
    labels = replace(
        labels,
        end_levels=labels.end_levels if labels.end_levels is not None else classifier.get("end_levels") or {},
        level_counts=labels.level_counts if labels.level_counts is not None else classifier.get("level_counts") or {},
        first_level=labels.first_level or c.dataset.get("first_level"),
        last_level=labels.last_level or c.dataset.get("last_level"),
    )
    return InductiveLoop(
        c.detector, c.segmenter, c.predictor, c.classifier, replace(config, labels=labels), level_mapper=c.level_mapper
    )


def load_named_loop(
    name,
    search_root,
    config: LoopConfig | Mapping | None = None,
    device: str = "cpu",
    which: str = "best",
    overrides: Mapping | None = None,
    view: str | None = None,
) -> tuple[InductiveLoop, str | None, dict]:
    """(the loop, the view for films without one, the manifest as read with its "path") of a manifest
    named by its path or "latest" (the newest under `search_root`); view None: the view of the dataset
    the checkpoints were trained on."""
    path = find_manifest(name, search_root)
    manifest = read_manifest(path)
    manifest["path"] = str(path)
    loop = load_loop(manifest, config, device, which, overrides)
    return loop, view or (manifest.get("dataset") or {}).get("view"), manifest
