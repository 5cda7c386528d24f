"""Peak memory of infer.py and evaluate.py over N synthetic films: it should not grow with N.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pipeline_memory.py --films 16 256 \
        --manifest outputs/train_all_tiny/runs/<time>/manifest.json

For each N, a synthetic test split of N films (--size px) is written to disk as COCO
(`spinefm.data.export`); `infer.py` runs on its images and `evaluate.py` on the split, each as a
subprocess whose process tree (the main process and its DataLoader workers) is sampled every
--interval s from /proc: the main process's peak RSS (VmHWM) and the largest sum of the tree's RSS
(pages shared between processes count once per process). Without --manifest, tiny models are
trained first (as `benchmarks/pipeline_speed.py` does), and every run uses its loop settings that
make such models walk.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from omegaconf import OmegaConf

from benchmarks.pipeline_speed import DETECTOR, WALKING, train_tiny
from spinefm.data.export import export_dataset
from spinefm.io_utils import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("infer", "evaluate")


def export_films(folder: Path, films: int, size: int) -> None:
    """A synthetic dataset under `folder` whose test split holds `films` phantoms of `size` px."""
    dataset = OmegaConf.load(REPO / "configs/dataset/synthetic.yaml")
    dataset.reader.num_images = {"train": 0, "val": 0, "test": films}
    dataset.reader.phantom.image_size = size
    export_dataset(dataset, folder, splits=("test",))


def tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    pids, stack = [], [pid]
    while stack:
        pids.append(stack.pop())
        for children in Path(f"/proc/{pids[-1]}/task").glob("*/children"):
            try:
                stack += map(int, children.read_text().split())
            except OSError:  # the task ended meanwhile
                pass
    return pids


def status_kb(pid: int, field: str) -> int:
    """A `/proc/<pid>/status` field in kB (0 once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_memory(command: list[str], log: Path, interval: float) -> dict:
    """Run `command` in the repository (its output to `log`): the peak RSS in MB of its main process
    and of its process tree, the most processes seen at once, and the wall time."""
    start = time.perf_counter()
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT)
        main_kb = tree_kb = processes = 0
        while process.poll() is None:
            pids = tree(process.pid)
            main_kb = max(main_kb, status_kb(process.pid, "VmHWM"))
            tree_kb = max(tree_kb, sum(status_kb(pid, "VmRSS") for pid in pids))
            processes = max(processes, len(pids))
            time.sleep(interval)
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}:\n{log.read_text()[-3000:]}")
    return {
        "main_peak_mb": main_kb / 1024,
        "tree_peak_mb": tree_kb / 1024,
        "processes": processes,
        "seconds": time.perf_counter() - start,
    }


def commands(manifest: Path, films: Path, work: Path, num_workers: int) -> dict[str, list[str]]:
    """infer.py on the films' images and evaluate.py on their test split, with the walking settings."""
    common = [
        f"pipeline.checkpoints={manifest}",
        f"num_workers={num_workers}",
        "progress_bar=false",
        *(f"pipeline.loop.{key}={value}" for key, value in WALKING.items()),
        *(
            f"pipeline.components.{name}.{key}={value}"
            for name, settings in DETECTOR.items()
            for key, value in settings.items()
        ),
    ]
    return {
        "infer": [
            sys.executable,
            "infer.py",
            f"input={films / 'images'}",
            f"output={work / 'infer'}",
            f"hydra.run.dir={work / 'infer_run'}",
            *common,
        ],
        "evaluate": [
            sys.executable,
            "evaluate.py",
            "dataset=synthetic",
            f"dataset.root={films}",
            f"hydra.run.dir={work / 'evaluate'}",
            *common,
        ],
    }


def table(rows: list[dict]) -> str:
    lines = [
        f"{'command':<9} {'films':>6} {'written':>7} {'main peak MB':>12} {'tree peak MB':>12} "
        f"{'processes':>9} {'seconds':>8}"
    ]
    lines += [
        f"{r['command']:<9} {r['films']:>6} {r['written']:>7} {r['main_peak_mb']:>12.0f} {r['tree_peak_mb']:>12.0f} "
        f"{r['processes']:>9} {r['seconds']:>8.1f}"
        for r in rows
    ]
    for command in COMMANDS:
        runs = sorted((r for r in rows if r["command"] == command), key=lambda r: r["films"])
        first, last = runs[0], runs[-1]
        lines.append(
            f"{command}: {first['films']} -> {last['films']} films, "
            f"main {last['main_peak_mb'] - first['main_peak_mb']:+.0f} MB, "
            f"tree {last['tree_peak_mb'] - first['tree_peak_mb']:+.0f} MB"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--films", type=int, nargs="+", default=[16, 256])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--manifest", type=Path, help="manifest.json of trained components (default: train tiny ones)")
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader workers (the runner's default: 2)")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between samples")
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/pipeline_memory.json"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        manifest = (args.manifest or train_tiny(Path(tmp) / "train")).resolve()
        for films in args.films:
            work = Path(tmp) / f"films_{films}"
            export_films(work / "films", films, args.size)
            for command, argv in commands(manifest, work / "films", work, args.num_workers).items():
                row = {"command": command, "films": films, **peak_memory(argv, work / f"{command}.log", args.interval)}
                row["written"] = sum(1 for path in (work / command).rglob("*.json") if path.name != "summary.json")
                rows.append(row)
                print(
                    f"{command} on {films} films: main peak {row['main_peak_mb']:.0f} MB, "
                    f"tree peak {row['tree_peak_mb']:.0f} MB",
                    flush=True,
                )
    report = {
        "settings": {
            "size": args.size,
            "num_workers": args.num_workers,
            "interval_s": args.interval,
            "manifest": str(args.manifest or "trained tiny"),
            "loop": WALKING,
            "components": DETECTOR,
        },
        "runs": rows,
    }
    print(table(rows))
    print(f"written to {atomic_write_json(args.out, report)}")


if __name__ == "__main__":
    main()
