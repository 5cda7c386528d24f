"""Inductive-loop throughput: one film and one vertebra at a time (sequential, as the original
SpineFM), one film at a time with both directions batched (per_image, `InductiveLoop.run`), and all
films in lockstep (`LockstepRunner`), in one process, with the time spent in each component.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pipeline_speed.py --images 8 --size 256

Without --manifest, tiny models are trained first (`train.py experiment=train_all_tiny debug=limit`,
minutes on a CPU). The loop settings force walking on such untrained-looking models (thresholds 0,
no overlap stop), so every stage does real work; quality is not the point here.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from spinefm.io_utils import atomic_write_json
from spinefm.pipeline.components import load_loop
from spinefm.pipeline.lockstep import LockstepRunner
from spinefm.pipeline.loop import InductiveLoop
from spinefm.synthetic import PhantomConfig, generate_phantom

REPO = Path(__file__).resolve().parents[1]

STAGES = ("detect", "segment", "classify", "predict")
FORWARDS = {"detect", "segment", "classify", "predict", "infer"}
# lockstep_padded: one detector batch for all films (not identical to per-image detection on mixed sizes)
MODES = ("sequential", "per_image", "lockstep", "lockstep_padded")
# Loop and detector settings that make tiny models walk (as tests/test_pipeline_components.py).
WALKING = {"mask_threshold": 0.0, "final_threshold": 0.0, "overlap_iou": 1.0, "max_steps": 5, "duplicate_iou": 1.0}
DETECTOR = {"maskrcnn": {"score_threshold": 0.0, "mask_threshold": 0.5}}


class Timed:
    """A component whose method calls add their wall time to `seconds[stage]`; calls to a forward pass
    (FORWARDS; `cut` and `to_image` are numpy) count in `calls[stage]`."""

    def __init__(self, component, stage: str, seconds: dict, calls: dict):
        self._component, self._stage, self._seconds, self._calls = component, stage, seconds, calls

    def __getattr__(self, name):
        attribute = getattr(self._component, name)
        if not callable(attribute):
            return attribute

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return attribute(*args, **kwargs)
            finally:
                self._seconds[self._stage] += time.perf_counter() - start
                self._calls[self._stage] += int(name in FORWARDS)

        return timed


def _timed_loop(loop: InductiveLoop, sequential: bool, seconds: dict, calls: dict) -> InductiveLoop:
    parts = {"detector": "detect", "segmenter": "segment", "predictor": "predict", "classifier": "classify"}
    config = replace(loop.config, sequential=sequential)
    return InductiveLoop(**{name: Timed(getattr(loop, name), stage, seconds, calls) for name, stage in parts.items()}, config=config)


def run_mode(loop: InductiveLoop, mode: str, images, views, image_ids) -> tuple[list, dict]:
    """The results of one mode on every film, and its timings."""
    seconds, calls = defaultdict(float), defaultdict(int)
    timed = _timed_loop(loop, mode == "sequential", seconds, calls)
    start = time.perf_counter()
    if mode.startswith("lockstep"):
        results = LockstepRunner(timed, detect_by_shape=mode == "lockstep").run_many(images, views, image_ids)
    else:
        results = [timed.run(image, view, image_id) for image, view, image_id in zip(images, views, image_ids)]
    total = time.perf_counter() - start
    stages = {stage: seconds[stage] for stage in STAGES}
    stages["other"] = total - sum(stages.values())
    return results, {
        "seconds": total,
        "radiographs_per_s": len(images) / total,
        "stage_seconds": stages,
        "component_calls": {stage: calls[stage] for stage in STAGES},
        "instances": sum(len(r.instances) for r in results),
        "steps": sum(len(r.trace.steps) for r in results),
    }


def benchmark(loop: InductiveLoop, images, views, image_ids=None, warmup: bool = True) -> dict:
    """Every mode on the same films. Keys: images, modes {mode: {seconds, radiographs_per_s,
    stage_seconds {detect, segment, classify, predict, other}, component_calls, instances, steps}},
    lockstep_over_sequential (throughput ratio), same_levels (films whose levels agree across the
    exact modes: all but lockstep_padded)."""
    image_ids = list(image_ids) if image_ids is not None else [str(i) for i in range(len(images))]
    if warmup:  # first-call costs (allocators, lazy imports) out of the timings
        loop.run(images[0], views[0])
    modes, levels = {}, {}
    for mode in MODES:
        results, modes[mode] = run_mode(loop, mode, images, views, image_ids)
        levels[mode] = [r.levels for r in results]
    return {
        "images": len(images),
        "modes": modes,
        "lockstep_over_sequential": modes["lockstep"]["radiographs_per_s"] / modes["sequential"]["radiographs_per_s"],
        "same_levels": sum(len({str(levels[m][i]) for m in MODES[:3]}) == 1 for i in range(len(images))),
    }


def table(report: dict) -> str:
    head = f"{'mode':<15} {'radiographs/s':>13} " + " ".join(f"{s + ' s':>10}" for s in (*STAGES, "other")) + f" {'seg calls':>9} {'det calls':>9}"
    rows = [head]
    for mode, row in report["modes"].items():
        stages = " ".join(f"{row['stage_seconds'][s]:>10.3f}" for s in (*STAGES, "other"))
        rows.append(f"{mode:<15} {row['radiographs_per_s']:>13.3f} {stages} {row['component_calls']['segment']:>9} {row['component_calls']['detect']:>9}")
    rows.append(f"lockstep / sequential throughput: {report['lockstep_over_sequential']:.2f}x; "
                f"levels equal across modes on {report['same_levels']}/{report['images']} films")
    return "\n".join(rows)


def train_tiny(log_dir: Path) -> Path:
    command = [sys.executable, "train.py", f"paths.log_dir={log_dir}", "experiment=train_all_tiny", "debug=limit", "callbacks.progress_bar=null"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    (manifest,) = sorted(log_dir.glob("train_all_tiny/runs/*/manifest.json"))
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--manifest", type=Path, help="manifest.json of trained components (default: train tiny ones)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-steps", type=int, default=WALKING["max_steps"])
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/pipeline_speed.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = args.manifest or train_tiny(Path(tmp))
        loop = load_loop(manifest, {**WALKING, "max_steps": args.max_steps}, device=args.device, overrides=DETECTOR)
    config = PhantomConfig(image_size=args.size)
    records = [generate_phantom(seed, config) for seed in range(args.images)]
    report = benchmark(loop, [r.load_image() for r in records], [r.view for r in records], [r.id for r in records])
    report["settings"] = {
        "size": args.size, "device": args.device, "manifest": str(args.manifest or "trained tiny"), "loop": {**WALKING, "max_steps": args.max_steps}
    }
    print(table(report))
    print(f"written to {atomic_write_json(args.out, report)}")


if __name__ == "__main__":
    main()
