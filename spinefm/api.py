"""SpineFM from Python: load a manifest's checkpoints once, then segment and label films.

    import spinefm

    pipeline = spinefm.load("outputs/aasce_cpu/runs/<time>/manifest.json")
    result = pipeline.segment("film.jpg")  # a file (DICOM included) or a 2-D array
    for vertebra in result.instances:
        print(vertebra.level, vertebra.centroid, vertebra.mask.sum())

The settings are infer.py's: `load_loop` takes what a manifest's checkpoints record (Med-SA's
thresholds, the classifier's level counts, the training dataset's view and level range) and the
loop's own defaults for the rest; `loop` and `components` change them as `pipeline.loop.*` and
`pipeline.components.*` do on infer.py's command line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from spinefm.data.image_io import read_image
from spinefm.pipeline.components.loading import load_named_loop
from spinefm.pipeline.core.loop import InductiveLoop, LockstepRunner
from spinefm.pipeline.core.types import LoopResult

Image = np.ndarray | str | Path


class SpinePipeline:
    """The inductive loop on one manifest's checkpoints. `view`: the view of films segmented without
    one (default: the view the checkpoints were trained on)."""

    def __init__(self, loop: InductiveLoop, view: str | None = None):
        self.loop = loop
        self.view = view

    def segment(self, image: Image, view: str | None = None) -> LoopResult:
        """One film's vertebrae top to bottom (`result.instances`: level, mask crop and its offset,
        centroid, score) and the trace of how the loop found them."""
        return self.segment_many([image], [view])[0]

    def segment_many(self, images: Sequence[Image], views: Sequence[str | None] | None = None) -> list[LoopResult]:
        """Several films walked in lockstep (one batched call per step for all of them); each result
        is the one `segment` gives."""
        views = list(views) if views is not None else [None] * len(images)
        films, ids = zip(*(_film(image) for image in images)) if images else ((), ())
        return LockstepRunner(self.loop).run_many(films, [v or self.view for v in views], ids)


def load(
    manifest="latest",
    device: str = "cpu",
    which: str = "best",
    view: str | None = None,
    loop: Mapping | None = None,
    components: Mapping | None = None,
    search_root="outputs",
) -> SpinePipeline:
    """A `SpinePipeline` on a manifest written by `train.py experiment=...` ("latest": the newest under
    `search_root`). which: "best" or "last" checkpoints. loop: LoopConfig settings, e.g. {"patience": 4};
    components: adapter settings per stage, e.g. {"medsa": {"cpu_runtime": "torch"}}."""
    pipeline_loop, default_view, _ = load_named_loop(manifest, search_root, loop, device, which, components, view)
    return SpinePipeline(pipeline_loop, default_view)


def _film(image: Image) -> tuple[np.ndarray, str | None]:
    """(pixels, id) of an array or a file; a white-background file is inverted back, as infer.py does."""
    if isinstance(image, str | Path):
        return read_image(image, auto_invert=True).pixels, Path(image).stem
    return np.asarray(image), None
