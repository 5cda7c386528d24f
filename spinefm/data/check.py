"""Dataset check: counts per split and every problem found, before anything is trained.

    python -m spinefm.data.check dataset=aasce dataset.root=PATH

Prints a table per split, writes `dataset_summary.json` to the run folder, and exits non-zero
only when no usable image was found. Bad files are named and skipped, never fatal.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import hydra
from omegaconf import DictConfig

from spinefm.data.factory import build_reader
from spinefm.data.levels import level_index
from spinefm.data.problems import DataError, Problem
from spinefm.data.readers.base import is_dataset_root
from spinefm.data.record import ImageRecord
from spinefm.io_utils import atomic_write_json
from spinefm.progress import progress as with_progress

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")


def check_dataset(dataset_cfg, splits=("train", "val", "test"), progress: bool = True) -> dict:
    """Read every image of every split; return the summary that check writes as JSON."""
    summary = {"dataset": dataset_cfg.name, "root": str(dataset_cfg.root), "splits": {}}
    all_levels, all_problems = Counter(), []
    if dataset_cfg.root is not None and not is_dataset_root(dataset_cfg.root):  # once, not once per split
        all_problems.append(Problem("missing_root", "*", f"no folder {dataset_cfg.root}; set dataset.root").to_dict())
        splits = ()
    for split in splits:
        result = _check_split(dataset_cfg, split, progress)
        summary["splits"][split] = result
        all_levels.update(result["levels"])
        all_problems.extend(dict(p, split=split) for p in result["problems"])
    summary["images"] = sum(s["images"] for s in summary["splits"].values())
    summary["skipped"] = sum(s["skipped"] for s in summary["splits"].values())
    summary["vertebrae"] = sum(all_levels.values())
    summary["levels"] = _ordered(all_levels)
    summary["problems"] = all_problems
    summary["problem_counts"] = dict(Counter(p["kind"] for p in all_problems))
    return summary


def _check_split(dataset_cfg, split: str, show_progress: bool) -> dict:
    result = {"images": 0, "skipped": 0, "vertebrae": 0, "levels": {}, "problems": []}
    try:
        reader = build_reader(dataset_cfg, split)
    except Exception as error:  # a broken index file loses this split, not the run
        result["problems"].append(
            Problem("unreadable_annotation", "*", f"cannot read split {split}: {error}").to_dict()
        )
        return result
    levels = Counter()
    indices = range(len(reader))
    for index in with_progress(indices, f"check {split}", unit="images") if show_progress else indices:
        problems = []
        try:
            record = reader[index]
            problems.extend(record.problems)
            problems.extend(_outline_problems(record, record.load_image().shape))
        except DataError as error:
            problems.append(error.problem)
            record = None
        except Exception as error:  # an unexpected file content is still only this image's problem
            problems.append(Problem("unreadable_annotation", reader.ids[index], f"{type(error).__name__}: {error}"))
            record = None
        result["problems"].extend(p.to_dict() for p in problems)
        if record is None or not record.vertebrae:
            result["skipped"] += 1
            continue
        result["images"] += 1
        levels.update(record.levels)
    result["vertebrae"] = sum(levels.values())
    result["levels"] = _ordered(levels)
    return result


def _outline_problems(record: ImageRecord, shape) -> list[Problem]:
    height, width = shape[:2]
    problems = []
    for vertebra in record.vertebrae:
        x0, y0, x1, y1 = vertebra.box()
        if vertebra.mask is not None:  # mask boxes are exclusive at the far end
            x1, y1 = x1 - 1, y1 - 1
        if x0 < -0.5 or y0 < -0.5 or x1 > width - 0.5 or y1 > height - 0.5:
            problems.append(
                Problem(
                    "outline_outside_image",
                    record.id,
                    f"box {x0:.0f},{y0:.0f},{x1:.0f},{y1:.0f} exceeds {width}x{height}",
                    level=vertebra.level,
                )
            )
    return problems


def _ordered(levels: Counter) -> dict[str, int]:
    return {level: levels[level] for level in sorted(levels, key=level_index)}


def format_summary(summary: dict, max_problems: int = 20) -> str:
    levels = list(summary["levels"])
    header = f"{'split':<6} {'images':>6} {'skipped':>7} {'vertebrae':>9}  " + " ".join(f"{lv:>4}" for lv in levels)
    lines = [f"dataset {summary['dataset']} at {summary['root']}", header]
    for split, s in summary["splits"].items():
        counts = " ".join(f"{s['levels'].get(lv, 0):>4}" for lv in levels)
        lines.append(f"{split:<6} {s['images']:>6} {s['skipped']:>7} {s['vertebrae']:>9}  {counts}")
    lines.append(f"{'all':<6} {summary['images']:>6} {summary['skipped']:>7} {summary['vertebrae']:>9}")
    problems = summary["problems"]
    lines.append(f"{len(problems)} problem(s)" + (f": {summary['problem_counts']}" if problems else ""))
    for problem in problems[:max_problems]:
        lines.append(
            "  " + str(Problem(**{k: v for k, v in problem.items() if k != "split"})) + f" [{problem['split']}]"
        )
    if len(problems) > max_problems:
        lines.append(f"  ... {len(problems) - max_problems} more in dataset_summary.json")
    return "\n".join(lines)


@hydra.main(config_path=CONFIG_DIR, config_name="check", version_base="1.3")
def main(cfg: DictConfig) -> None:
    summary = check_dataset(cfg.dataset, splits=list(cfg.splits))
    path = atomic_write_json(Path(cfg.paths.output_dir) / "dataset_summary.json", summary)
    print(format_summary(summary))
    print(f"summary written to {path}")
    if summary["images"] == 0:
        print("no usable image found: check dataset.root and the dataset's layout", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
