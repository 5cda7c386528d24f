"""Decode the recorded chains of an infer.py / evaluate.py predictions folder again, with other decoder
settings and without running any model: seconds for a whole test split, so decoder settings can be
tried offline on real films.

    python -m spinefm.pipeline.tools.redecode PREDICTIONS OUT [min_evidence=0.1 detector_weight=0.5 ...]
    python evaluate.py dataset=aasce predictions=OUT

Each `<id>.json` in PREDICTIONS is written to OUT with its instances, chain levels and trace
re-decoded (`decode.DecodeConfig` settings as key=value; the duplicate IoU as duplicate_iou=...).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from spinefm.pipeline.core.decode import ChainRecord, ChainView, DecodeConfig, decode_chain
from spinefm.pipeline.core.loop_config import LoopConfig
from spinefm.pipeline.core.selection import select_instances
from spinefm.pipeline.io.format import instance_entry, read_chain, rewrite_instance_files


def redecode(payload: dict, config: DecodeConfig, duplicate_iou: float = LoopConfig.duplicate_iou) -> dict:
    """An instances JSON (as read) decoded again; the input is left as it was."""
    trace = payload["trace"]
    probabilities = np.array(
        [[np.nan if p is None else p for p in row] for row in trace["chain_probabilities"]], dtype=np.float64
    )
    support = np.asarray(trace["chain_support"], dtype=np.float64)
    view = ChainView(**trace["chain_view"])
    chain = read_chain(payload)
    centroids = np.array(  # recorded by the loop; older files: the final masks' centroids
        trace.get("chain_centroids") or [[np.nan] * 2 if i is None else i.centroid for i in chain], dtype=np.float64
    )
    level_map = trace.get("chain_level_map")
    record = ChainRecord(
        probabilities,
        trace["classes"],
        support,
        view,
        trace["class_prior"],
        centroids,
        None if level_map is None else np.asarray(level_map, dtype=np.float64),
        trace.get("level_map_names"),
    )
    decoded = decode_chain(record, config)
    for instance, level in zip(chain, decoded.levels):
        if instance is not None:
            instance.level = level
    instances, dropped = select_instances(chain, decoded.kept, duplicate_iou)
    entries = [
        None if e is None else {**e, "level": lv, "kept": k}
        for e, lv, k in zip(payload["chain"], decoded.levels, decoded.kept)
    ]
    new_trace = {**trace, "chain_levels": decoded.levels, "chain_kept": decoded.kept, "dropped": dropped}
    return {**payload, "instances": [instance_entry(i) for i in instances], "trace": new_trace, "chain": entries}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("predictions", type=Path, help="a folder of <id>.json written by infer.py or evaluate.py")
    parser.add_argument("out", type=Path, help="the folder to write the re-decoded <id>.json to")
    parser.add_argument(
        "settings",
        nargs="*",
        help="DecodeConfig settings as key=value (evidence.outside.vertebra=0.2), and duplicate_iou=...",
    )
    args = parser.parse_args(argv)
    settings = OmegaConf.to_container(OmegaConf.from_dotlist(args.settings))
    duplicate_iou = settings.pop("duplicate_iou", LoopConfig.duplicate_iou)
    config = DecodeConfig(**settings)
    count = rewrite_instance_files(args.predictions, args.out, lambda payload: redecode(payload, config, duplicate_iou))
    print(f"{count} films re-decoded into {args.out}")


if __name__ == "__main__":
    main()
