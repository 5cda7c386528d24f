"""Classify the recorded chains of an infer.py / evaluate.py predictions folder again with another
spine-end checkpoint, then decode them: a classifier compared on real films in about a minute per
hundred films on a CPU, without the walk.

    python -m spinefm.pipeline.tools.reclassify PREDICTIONS OUT CHECKPOINT [scales=[1.0] hflip=false ...]
    python evaluate.py dataset=aasce predictions=OUT

Each chain position is classified at its recorded centroid with its recorded patch side
(`trace.chain_sides`), on the film the JSON names (read again, inverted as recorded), and the chain
is decoded as `redecode` does. Settings as KEY=VALUE: the classifier's test-time settings (scales,
hflip, batch_size; else the adapter's defaults, as infer.py and evaluate.py use them), decoder
settings as decode.KEY=VALUE, and duplicate_iou. The walk is not re-run: positions,
stops and repairs stay the recorded run's, so with that run's own checkpoint and settings the
output is its result.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from spinefm.checkpoints import load_component
from spinefm.data.image_io import invert, read_image
from spinefm.pipeline.components import adapters  # noqa: F401  (registers the built-in adapters)
from spinefm.pipeline.components.roles import adapter_class
from spinefm.pipeline.core.decode import DecodeConfig
from spinefm.pipeline.core.loop import InductiveLoop
from spinefm.pipeline.core.loop_config import LoopConfig
from spinefm.pipeline.core.types import Patches
from spinefm.pipeline.io.format import rewrite_instance_files
from spinefm.pipeline.tools.redecode import redecode


def recorded_film(payload: dict) -> np.ndarray:
    """The film a JSON's chain was walked on: its file read again, inverted as the run recorded."""
    image = payload["image"]
    if not image.get("file"):
        raise ValueError(f"{image.get('id')}: the JSON names no film file to classify again")
    loaded = read_image(Path(image["file"]), image.get("id"))
    pixels = invert(loaded.pixels) if bool(image.get("inverted")) != loaded.inverted else loaded.pixels
    return InductiveLoop.film(pixels, image.get("id"))


def reclassify(payload: dict, classifier, film: np.ndarray) -> dict:
    """An instances JSON (as read) with every classified chain position classified again by
    `classifier` (a spine-end adapter), not yet decoded; the input is left as it was."""
    trace = payload["trace"]
    sides = trace.get("chain_sides")
    if sides is None:
        raise ValueError(
            f"{payload['image'].get('id')}: the JSON records no chain_sides (written by an older version); "
            "run infer.py or evaluate.py again to re-classify it"
        )
    classes = list(classifier.classes)
    rows = [[None] * len(classes) for _ in sides]  # None: a position the walk did not classify
    asked = [i for i, side in enumerate(sides) if side is not None]
    if asked:
        centres = np.asarray(trace["chain_centroids"], dtype=np.float64)[asked]
        (probabilities,) = classifier.classify([Patches(film, centres, tuple(int(sides[i]) for i in asked))])
        for i, row in zip(asked, probabilities):
            rows[i] = [float(p) for p in row]
    new_trace = {**trace, "chain_probabilities": rows, "classes": classes, "class_prior": classifier.class_prior}
    return {**payload, "trace": new_trace}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("predictions", type=Path, help="a folder of <id>.json written by infer.py or evaluate.py")
    parser.add_argument("out", type=Path, help="the folder to write the re-classified, re-decoded <id>.json to")
    parser.add_argument("checkpoint", type=Path, help="a spine-end stage checkpoint (.ckpt)")
    parser.add_argument(
        "settings", nargs="*", help="classifier settings (scales=[1.0]), decode.KEY=VALUE, duplicate_iou=..."
    )
    args = parser.parse_args(argv)
    settings = OmegaConf.to_container(OmegaConf.from_dotlist(args.settings))
    decode = DecodeConfig(**settings.pop("decode", {}))
    duplicate_iou = settings.pop("duplicate_iou", LoopConfig.duplicate_iou)
    model, info = load_component(args.checkpoint)
    if info["role"] != "classifier":
        parser.error(
            f"{args.checkpoint} is a {info['component']} checkpoint ({info['role']}), not a spine-end classifier"
        )
    classifier = adapter_class(info["adapter"]).from_loaded(model, info, "cpu", **settings)
    count = rewrite_instance_files(
        args.predictions,
        args.out,
        lambda payload: redecode(reclassify(payload, classifier, recorded_film(payload)), decode, duplicate_iou),
    )
    print(f"{count} films re-classified and re-decoded into {args.out}")


if __name__ == "__main__":
    main()
