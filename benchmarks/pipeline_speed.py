"""Inductive-loop throughput, and each film's time split into network forwards and everything else,
for each CPU runtime of Med-SA.

Modes, in one process: one film and one vertebra at a time (sequential, as the original SpineFM),
one film at a time with both directions batched (per_image, `InductiveLoop.run`), and all films in
lockstep (`LockstepRunner`; lockstep_padded: one detector call for all films). Forward time is
measured around each role's network (forward hooks, synchronised on a GPU); "other" is the rest:
patch cutting, mapping masks back, the walk's decisions, decoding, post-processing. "patches/film"
counts Med-SA's inputs: one per segmented patch.

Runtimes (--runtimes, `MedSAAdapter` cpu_runtime; --streams, its cpu_streams: several give a row
each) run one after the other on the same films, for each manifest (several --manifest NAME=PATH:
checkpoints compared side by side); the first is the reference the others' levels and masks (Dice of
the instances, paired top to bottom) are compared with. A runtime's warm-up film makes its ONNX
export when it is not cached yet. --masks detector segmenter gives each a row with the loop's
`detector_masks` on and off: confident detections keep their own masks, or Med-SA segments every
position.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pipeline_speed.py --images 8 --size 256
    .venv/bin/python benchmarks/pipeline_speed.py --manifest M.json --images 8 --real --modes lockstep \
        --films ../shared/datasets/aasce_train/boostnet_labeldata/data/training \
        --runtimes torch openvino onnxruntime openvino_bf16

Without --manifest, tiny models are trained first (`train.py experiment=train_all_tiny debug=limit`,
minutes on a CPU). Without --real the loop settings force walking on such untrained-looking models
(thresholds 0, no overlap stop), so every stage does real work; quality is not the point here.
--real keeps the checkpoints' own settings (what infer.py runs). --films: real films (a folder,
list or file, as infer.py's input) instead of synthetic phantoms.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import replace
from itertools import product
from pathlib import Path

import numpy as np
import torch

from benchmarks.clock import synchronise
from spinefm.data.image_io import read_image
from spinefm.data.masks import crop_iou
from spinefm.io_utils import atomic_write_json
from spinefm.pipeline.components.loading import load_loop
from spinefm.pipeline.components.manifest import read_manifest
from spinefm.pipeline.core.loop import InductiveLoop, LockstepRunner
from spinefm.pipeline.core.types import ALL_ROLES, LoopResult
from spinefm.pipeline.runner.inputs import find_inputs
from spinefm.runtime import CPU_RUNTIMES
from spinefm.synthetic import PhantomConfig, generate_phantom

REPO = Path(__file__).resolve().parents[1]

MODES = ("sequential", "per_image", "lockstep", "lockstep_padded")
# Loop and detector settings that make tiny models walk (as tests/test_pipeline_components.py).
WALKING = {"mask_threshold": 0.0, "final_threshold": 0.0, "overlap_iou": 1.0, "max_steps": 5, "duplicate_iou": 1.0}
DETECTOR = {"maskrcnn": {"score_threshold": 0.0, "mask_threshold": 0.5}}


class ForwardClock:
    """Wall time, calls and inputs (the first argument's length: patches, films) of each role's
    network forward (hooks on the adapters' networks)."""

    def __init__(self, loop: InductiveLoop):
        self.seconds, self.calls, self.items = defaultdict(float), defaultdict(int), defaultdict(int)
        self._started: dict[str, float] = {}
        self._hooks = []
        for role, component in loop.components.items():
            for network in component.networks() if hasattr(component, "networks") else ():  # stubs have none
                self._hooks.append(
                    network.register_forward_pre_hook(lambda _, args, role=role: self._start(role, args))
                )
                self._hooks.append(network.register_forward_hook(lambda *_, role=role: self._stop(role)))

    def _start(self, role, args) -> None:
        self.items[role] += len(args[0]) if args and hasattr(args[0], "__len__") else 1
        synchronise()
        self._started[role] = time.perf_counter()

    def _stop(self, role) -> None:
        synchronise()
        self.seconds[role] += time.perf_counter() - self._started[role]
        self.calls[role] += 1

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()
        self.items.clear()

    def remove(self) -> None:
        for hook in self._hooks:
            hook.remove()


def run_mode(
    loop: InductiveLoop, clock: ForwardClock, mode: str, images, views, image_ids, precision: str, device: str
) -> tuple[list, dict]:
    """The results of one mode on every film, and its timings."""
    loop = InductiveLoop(**loop.components, config=replace(loop.config, sequential=mode == "sequential"))
    autocast = torch.autocast(torch.device(device).type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    clock.reset()
    start = time.perf_counter()
    with autocast:
        if mode.startswith("lockstep"):
            results = LockstepRunner(loop, detect_by_shape=mode == "lockstep").run_many(images, views, image_ids)
        else:
            results = [loop.run(image, view, image_id) for image, view, image_id in zip(images, views, image_ids)]
    total = time.perf_counter() - start
    forwards = sum(clock.seconds.values())
    return results, {
        "seconds": total,
        "films_per_s": len(images) / total,
        "forward_seconds": {role: clock.seconds[role] for role in ALL_ROLES},
        "forward_calls": {role: clock.calls[role] for role in ALL_ROLES},
        "segmenter_patches_per_film": clock.items["segmenter"] / len(images),
        "other_seconds": total - forwards,
        "other_ms_per_film": 1000 * (total - forwards) / len(images),
        "other_fraction": (total - forwards) / total,
        "instances": sum(len(r.instances) for r in results),
        "steps": sum(len(r.trace.steps) for r in results),
    }


def benchmark(
    loop: InductiveLoop,
    images,
    views,
    image_ids=None,
    warmup: bool = True,
    precision: str = "fp32",
    modes=MODES,
    device: str = "cpu",
    results: dict | None = None,
) -> dict:
    """The modes on the same films. Keys: images, precision, modes {mode: {seconds, films_per_s,
    forward_seconds {role}, forward_calls {role}, segmenter_patches_per_film, other_seconds,
    other_ms_per_film, other_fraction, instances, steps}}, lockstep_over_sequential (throughput ratio,
    when both ran), same_levels (films whose levels agree across the exact modes: all but
    lockstep_padded). results, when given, receives each mode's `LoopResult`s."""
    image_ids = list(image_ids) if image_ids is not None else [str(i) for i in range(len(images))]
    if warmup:  # first-call costs (allocators, lazy imports) out of the timings
        loop.run(images[0], views[0])
    clock = ForwardClock(loop)
    report, levels = {}, {}
    try:
        for mode in modes:
            found, report[mode] = run_mode(loop, clock, mode, images, views, image_ids, precision, device)
            levels[mode] = [r.levels for r in found]
            if results is not None:
                results[mode] = found
    finally:
        clock.remove()
    exact = [m for m in modes if m != "lockstep_padded"]
    summary = {
        "images": len(images),
        "precision": precision,
        "modes": report,
        "same_levels": sum(len({str(levels[m][i]) for m in exact}) == 1 for i in range(len(images))),
    }
    if {"lockstep", "sequential"} <= set(report):
        summary["lockstep_over_sequential"] = report["lockstep"]["films_per_s"] / report["sequential"]["films_per_s"]
    return summary


def table(report: dict) -> str:
    """One runtime's modes, a row each."""
    head = f"{'mode':<15} {'films/s':>8} {'s/film':>8} " + " ".join(f"{r[:9] + ' s':>11}" for r in ALL_ROLES)
    head += f" {'other s':>8} {'other ms/film':>13} {'other %':>7} {'patches/film':>12}"
    rows = [head]
    for mode, row in report["modes"].items():
        forwards = " ".join(f"{row['forward_seconds'][r]:>11.3f}" for r in ALL_ROLES)
        rows.append(
            f"{mode:<15} {row['films_per_s']:>8.3f} {row['seconds'] / report['images']:>8.2f} {forwards} "
            f"{row['other_seconds']:>8.3f} "
            f"{row['other_ms_per_film']:>13.1f} {100 * row['other_fraction']:>7.1f} "
            f"{row['segmenter_patches_per_film']:>12.1f}"
        )
    if "lockstep_over_sequential" in report:
        rows.append(f"lockstep / sequential throughput: {report['lockstep_over_sequential']:.2f}x")
    rows.append(
        f"levels equal across the exact modes on {report['same_levels']}/{report['images']} films "
        f"({report['precision']})"
    )
    return "\n".join(rows)


def agreement(reference: list[LoopResult], results: list[LoopResult]) -> dict:
    """How far a runtime's results are from the reference's: films with the same levels, and the Dice
    of their instances paired top to bottom (films with as many instances as the reference)."""
    ious = np.array(
        [
            crop_iou(a.mask, a.offset, b.mask, b.offset)
            for ref, res in zip(reference, results)
            if len(ref.instances) == len(res.instances)
            for a, b in zip(ref.instances, res.instances)
        ]
    )
    dice = 2 * ious / (1 + ious)  # Dice = 2 IoU / (1 + IoU)
    return {
        "same_levels": sum(a.levels == b.levels for a, b in zip(reference, results)),
        "same_count": sum(len(a.instances) == len(b.instances) for a, b in zip(reference, results)),
        "films": len(reference),
        "mean_dice": float(dice.mean()) if dice.size else float("nan"),
        "min_dice": float(dice.min()) if dice.size else float("nan"),
    }


def runtime_table(reports: dict) -> str:
    """A row per runtime: its speed in the first mode, its patches, and its agreement with the first."""
    width = max(12, *(len(name) for name in reports))
    rows = [
        f"{'runtime':<{width}} {'mode':<15} {'s/film':>8} {'segmenter s/patch':>17} {'patches/film':>12} "
        f"{'x first':>8} {'same levels':>11} {'mean Dice':>9} {'min Dice':>8}"
    ]
    first = next(iter(reports.values()))
    for runtime, report in reports.items():
        mode, row = next(iter(report["modes"].items()))
        patches = row["segmenter_patches_per_film"] * report["images"]
        same = report["agreement"]
        rows.append(
            f"{runtime:<{width}} {mode:<15} {row['seconds'] / report['images']:>8.2f} "
            f"{row['forward_seconds']['segmenter'] / max(patches, 1):>17.3f} "
            f"{row['segmenter_patches_per_film']:>12.1f} "
            f"{next(iter(first['modes'].values()))['seconds'] / row['seconds']:>8.2f} "
            f"{same['same_levels']:>5}/{same['films']:<5} {same['mean_dice']:>9.4f} {same['min_dice']:>8.4f}"
        )
    return "\n".join(rows)


def train_tiny(log_dir: Path) -> Path:
    command = [
        sys.executable,
        "train.py",
        f"paths.log_dir={log_dir}",
        "experiment=train_all_tiny",
        "debug=limit",
        "callbacks.progress_bar=null",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    (manifest,) = sorted(log_dir.glob("train_all_tiny/runs/*/manifest.json"))
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, default=256, help="synthetic film size (without --films)")
    parser.add_argument("--films", type=Path, help="real films: a folder, list or file (the first --images, sorted)")
    parser.add_argument(
        "--manifest",
        nargs="+",
        help="manifest.json of trained components (default: train tiny ones); several as NAME=PATH are compared "
        "side by side, each with every runtime",
    )
    parser.add_argument("--real", action="store_true", help="the checkpoints' own loop settings, not forced walking")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--max-steps", type=int, default=WALKING["max_steps"])
    parser.add_argument(
        "--runtimes",
        nargs="+",
        choices=("torch", *CPU_RUNTIMES),
        default=["torch", "openvino"],
        help="what runs Med-SA on the CPU; the first is the reference",
    )
    parser.add_argument(
        "--streams",
        nargs="+",
        type=int,
        default=[2],
        help="patches an export runs side by side (MedSAAdapter cpu_streams); several: a row for each",
    )
    parser.add_argument(
        "--masks",
        nargs="+",
        choices=("detector", "segmenter"),
        help="the walk's masks on confident detections (the loop's detector_masks on / off; default: the "
        "loop's default); several: a row for each",
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/pipeline_speed.json"))
    args = parser.parse_args()
    settings = {} if args.real else {**WALKING, "max_steps": args.max_steps}
    with tempfile.TemporaryDirectory() as tmp:
        manifests = named_manifests(args.manifest) if args.manifest else {"tiny": train_tiny(Path(tmp))}
        loops, load_seconds = {}, {}
        for name, manifest in manifests.items():
            for (runtime, streams), masks in product(runtime_rows(args.runtimes, args.streams), args.masks or [None]):
                several = len(args.streams) > 1 and runtime != "torch"
                label = " ".join(
                    [name] * (len(manifests) > 1)
                    + [runtime]
                    + [f"x{streams}"] * several
                    + [f"{masks} masks"] * (len(args.masks or ()) > 1)
                )
                start = time.perf_counter()
                medsa = {"cpu_runtime": runtime, "cpu_streams": streams}
                overrides = {**({} if args.real else DETECTOR), "medsa": medsa}
                loop_settings = settings if masks is None else {**settings, "detector_masks": masks == "detector"}
                loops[label] = load_loop(manifest, loop_settings, device=args.device, overrides=overrides)
                load_seconds[label] = time.perf_counter() - start
        images, views, ids = films(args, next(iter(manifests.values())))
    reports, results = {}, {}
    reference = next(iter(loops))
    for runtime, loop in loops.items():
        results[runtime] = {}
        reports[runtime] = benchmark(
            loop,
            images,
            views,
            ids,
            precision=args.precision,
            modes=args.modes,
            device=args.device,
            results=results[runtime],
        )
        first_mode = args.modes[0]
        reports[runtime]["agreement"] = agreement(results[reference][first_mode], results[runtime][first_mode])
        print(f"--- {runtime}\n{table(reports[runtime])}")
    report = {
        "runtimes": reports,
        "settings": {
            "films": str(args.films or f"synthetic {args.size} px"),
            "device": args.device,
            "manifests": {name: str(path) for name, path in manifests.items()},
            "loop": settings or "checkpoints'",
            "load_seconds": load_seconds,
            "torch_threads": torch.get_num_threads(),
        },
    }
    print(runtime_table(reports))
    print("loading the checkpoints: " + ", ".join(f"{r} {s:.2f} s" for r, s in load_seconds.items()))
    print(f"written to {atomic_write_json(args.out, report)}")


def runtime_rows(runtimes: list[str], streams: list[int]) -> list[tuple[str, int]]:
    """(runtime, streams) of each row: every CPU runtime with every streams count, torch once."""
    return [(runtime, count) for runtime in runtimes for count in (streams[:1] if runtime == "torch" else streams)]


def named_manifests(values: list[str]) -> dict[str, Path]:
    """--manifest values (PATH or NAME=PATH) by name; a bare path is named by its position."""
    named = {}
    for index, value in enumerate(values):
        name, _, path = value.rpartition("=")
        named[name or str(index)] = Path(path)
    if len(named) != len(values):
        raise SystemExit(f"--manifest names must differ: {values}")
    return named


def films(args, manifest) -> tuple[list, list, list]:
    """(images, views, ids) of --films (the first --images), else of synthetic phantoms."""
    if args.films:
        inputs = find_inputs(args.films)[: args.images]
        view = (read_manifest(manifest).get("dataset") or {}).get("view")  # as infer.py: the training dataset's view
        return [read_image(i.path, i.id).pixels for i in inputs], [view] * len(inputs), [i.id for i in inputs]
    records = [generate_phantom(seed, PhantomConfig(image_size=args.size)) for seed in range(args.images)]
    return [r.load_image() for r in records], [r.view for r in records], [r.id for r in records]


if __name__ == "__main__":
    main()
