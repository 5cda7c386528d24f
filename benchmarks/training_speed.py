"""Training throughput per stage: how fast one loader worker makes samples, and where a step's time goes.

Each stage trains for a few steps through Lightning with its own data module, module and precision,
as train.py runs it, under a profiler synchronised with the GPU at the edges of each part:

    data wait   waiting for the next batch from the loader (with --num-workers 0: reading it here)
    to device   moving the batch to the accelerator
    forward     training_step without its self.log calls: the network and the loss
    backward    loss.backward
    optimiser   optimizer.step and zero_grad
    logging     self.log calls, callbacks and Lightning's own bookkeeping: the rest of the step

"loader/s" is samples/s of the stage's training loader run in this process: what one DataLoader
worker gives. "non-net" is the share of the step outside forward, backward and optimiser.

    .venv/bin/python benchmarks/training_speed.py                       # tiny networks, synthetic films
    .venv/bin/python benchmarks/training_speed.py --experiment train_all --batch-size 2 --dataset aasce
    .venv/bin/python benchmarks/training_speed.py --experiment aasce_gpu --device gpu --precision bf16-mixed
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch.profilers import SimpleProfiler

from benchmarks.clock import synchronise
from spinefm.io_utils import atomic_write_json
from spinefm.training.precision import effective_precision
from spinefm.training.run import build_stage, stage_config

REPO = Path(__file__).resolve().parents[1]
STAGES = ("maskrcnn", "medsa", "point_predictor", "spine_end")
PARTS = ("data_wait", "to_device", "forward", "backward", "optimiser", "logging")
NETWORK = ("forward", "backward", "optimiser")


class StepProfiler(SimpleProfiler):
    """Lightning's simple profiler, synchronised with the GPU, also noting when each batch fetch
    starts and how long the module's self.log calls take in each training step."""

    def __init__(self):
        super().__init__()
        self.fetch_starts: list[float] = []
        self.log_seconds: list[float] = []

    def start(self, action_name: str) -> None:
        synchronise()
        if action_name.endswith("train_dataloader_next"):
            self.fetch_starts.append(time.perf_counter())
        elif action_name == "run_training_batch":
            self.log_seconds.append(0.0)
        super().start(action_name)

    def stop(self, action_name: str) -> None:
        synchronise()
        super().stop(action_name)

    def describe(self) -> None:
        """No report of its own at the end of fit: the benchmark prints its table."""

    def time_logging(self, module: L.LightningModule) -> None:
        log = module.log

        def timed_log(*args, **kwargs):
            started = time.perf_counter()
            log(*args, **kwargs)
            if self.log_seconds:
                self.log_seconds[-1] += time.perf_counter() - started

        module.log = timed_log

    def durations(self, owner: str, hook: str) -> np.ndarray:
        """Seconds of every call of `hook`, profiled as "[owner]Class.hook"."""
        (name,) = [n for n in self.recorded_durations if n.startswith(f"[{owner}]") and n.endswith(f".{hook}")]
        return np.asarray(self.recorded_durations[name])


def step_parts(profiler: StepProfiler, warmup: int) -> dict:
    """Mean seconds of each part and of the whole step over the steps after `warmup`. A step lasts
    from the start of its batch's fetch to the next one's: the last step (and the epoch's end) is left out."""
    fetch = profiler.durations("_TrainingEpochLoop", "train_dataloader_next")
    training_step = profiler.durations("Strategy", "training_step")
    backward = profiler.durations("Strategy", "backward")
    logging = np.asarray(profiler.log_seconds)
    steps = slice(warmup, len(profiler.fetch_starts) - 1)
    if steps.stop <= warmup:
        raise ValueError(f"{len(training_step)} steps leave none to measure after {warmup} warm-up steps")
    parts = {
        "data_wait": fetch[steps],
        "to_device": profiler.durations("Strategy", "batch_to_device")[steps],
        "forward": (training_step - logging)[steps],
        "backward": backward[steps],
        "optimiser": (profiler.durations("LightningModule", "optimizer_step") - training_step - backward)[steps],
    }
    step = np.diff(profiler.fetch_starts)[steps]
    parts["logging"] = step - sum(parts.values())
    return {
        "steps": len(step),
        "step": float(step.mean()),
        **{name: float(value.mean()) for name, value in parts.items()},
    }


def loader_rate(loader, samples: int) -> float:
    """Samples/s of a loader iterated in this process (over as many epochs as `samples` needs)."""
    done, started = 0, time.perf_counter()
    while done < samples:
        for batch in loader:
            done += batch_size(batch)
            if done >= samples:
                break
    return done / (time.perf_counter() - started)


def batch_size(batch) -> int:
    if isinstance(batch, dict):
        return len(next(iter(batch.values())))
    return len(batch[0])  # (images, targets) detection batches


def stage_configs(experiment: str, overrides: list[str]) -> dict:
    """The composed single-stage config of every stage of a train-all experiment."""
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose(
            config_name="train", overrides=[f"experiment={experiment}", "paths.output_dir=unused", *overrides]
        )
    return {name: stage_config(cfg, name, Path("unused")) for name in cfg.stages}


def measure(cfg, steps: int, warmup: int, loader_samples: int, device: str, precision: str | None) -> dict:
    """Train `cfg.stage` for `steps` steps (at `precision`, else the stage's own); its step parts, loader
    rate and batch size."""
    L.seed_everything(cfg.seed, workers=True)
    datamodule, module = build_stage(cfg)
    profiler = StepProfiler()
    profiler.time_logging(module)
    trainer = L.Trainer(
        accelerator=device,
        devices=1,
        precision=precision or effective_precision(cfg.trainer.precision, device),
        max_epochs=1,
        limit_train_batches=steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        profiler=profiler,
    )
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    seconds = time.perf_counter() - started
    loader = datamodule.train_dataloader()
    if loader.num_workers:
        loader = type(loader)(
            loader.dataset, batch_size=loader.batch_size, sampler=loader.sampler, collate_fn=loader.collate_fn
        )
    return {
        "stage": cfg.stage.name,
        "batch_size": cfg.stage.data.batch_size,
        "train_samples": len(datamodule.datasets["train"]),
        "loader_samples_per_s": loader_rate(loader, loader_samples),
        "precision": trainer.precision,
        "fit_seconds": seconds,
        **step_parts(profiler, warmup),
    }


def table(rows: list[dict]) -> str:
    header = f"{'stage':16}{'batch':>6}{'loader/s':>10}{'step ms':>9}" + "".join(
        f"{p.replace('_', ' '):>11}" for p in PARTS
    )
    lines = [header + f"{'samples/s':>11}{'non-net':>9}"]
    for row in rows:
        network = sum(row[p] for p in NETWORK)
        lines.append(
            f"{row['stage']:16}{row['batch_size']:>6}{row['loader_samples_per_s']:>10.0f}{1000 * row['step']:>9.1f}"
            + "".join(f"{1000 * row[p]:>11.1f}" for p in PARTS)
            + f"{row['batch_size'] / row['step']:>11.1f}{(row['step'] - network) / row['step']:>9.0%}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--experiment",
        default="train_all_tiny",
        help="whose stage settings: train_all_tiny (tiny networks), train_all (full size), aasce_gpu ...",
    )
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--dataset", help="a dataset config (default: the experiment's, synthetic)")
    parser.add_argument(
        "--images", type=int, help="training images per stage (default: all; Mask R-CNN: enough for --steps)"
    )
    parser.add_argument("--batch-size", type=int, help="every stage's batch size (default: the stage's own)")
    parser.add_argument("--steps", type=int, default=12, help="training steps per stage (at most one epoch's)")
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of the means")
    parser.add_argument("--loader-samples", type=int, default=256, help="samples drawn to time the loader")
    parser.add_argument(
        "--num-workers", default="auto", help="loader processes while training, as train.py's num_workers"
    )
    parser.add_argument("--device", default="cpu", help="cpu | gpu")
    parser.add_argument(
        "--precision",
        help="32-true | bf16-mixed | ... (default: each stage's own, as train.py: bf16 only where the CPU has it)",
    )
    parser.add_argument(
        "--override", nargs="*", default=[], help="further train.py overrides, e.g. stages.medsa.data.jitter=0"
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/training_speed.json"))
    args = parser.parse_args(argv)

    overrides = [f"num_workers={args.num_workers}", *([f"dataset={args.dataset}"] if args.dataset else [])]
    if args.batch_size:
        overrides += [f"stages.{stage}.data.batch_size={args.batch_size}" for stage in args.stages]
    configs = stage_configs(args.experiment, [*overrides, *args.override])
    for stage in args.stages:  # Mask R-CNN's samples are whole films: as many as the steps take
        images = args.images and max(
            args.images, (args.steps + 1) * configs[stage].stage.data.batch_size * (stage == "maskrcnn")
        )
        configs[stage].stage.data.max_images = {"train": images, "val": 1}
    rows = [
        measure(configs[s], args.steps, args.warmup, args.loader_samples, args.device, args.precision)
        for s in args.stages
    ]
    report = {
        "experiment": args.experiment,
        "device": torch.cuda.get_device_name() if args.device == "gpu" else f"cpu, {torch.get_num_threads()} threads",
        "precision": args.precision or {row["stage"]: row["precision"] for row in rows},
        "num_workers": args.num_workers,
        "rows": rows,
    }
    print(table(rows))
    print(f"written to {atomic_write_json(args.out, report)}")
    return report


if __name__ == "__main__":
    main()
