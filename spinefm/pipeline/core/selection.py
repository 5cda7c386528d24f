"""Which of a decoded chain's instances become the film's vertebrae: the kept ones, with duplicates
(masks overlapping a better one) dropped."""

from __future__ import annotations

from spinefm.data.masks import crop_iou
from spinefm.pipeline.core.types import Instance


def select_instances(
    chain: list[Instance | None], kept: list[bool], duplicate_iou: float
) -> tuple[list[Instance], dict[str, int]]:
    """(the chain's kept instances, duplicates dropped; how many positions were dropped and why:
    "decoded_out", "empty", "duplicate")."""
    instances = [instance for instance, keep in zip(chain, kept) if keep and instance is not None]
    survivors = deduplicate(instances, duplicate_iou)
    dropped = {
        "decoded_out": kept.count(False),
        "empty": sum(keep and instance is None for instance, keep in zip(chain, kept)),
        "duplicate": len(instances) - len(survivors),
    }
    return [instances[i] for i in survivors], dropped


def deduplicate(instances: list[Instance], max_iou: float) -> list[int]:
    """Indices (in order) of the instances kept when, best score first, each one whose mask overlaps a
    kept one with IoU > max_iou is dropped (non-maximum suppression on masks)."""
    kept: list[int] = []
    for i in sorted(range(len(instances)), key=lambda i: -instances[i].score):
        mask, offset = instances[i].mask, instances[i].offset
        if all(crop_iou(mask, offset, instances[k].mask, instances[k].offset) <= max_iou for k in kept):
            kept.append(i)
    return sorted(kept)
