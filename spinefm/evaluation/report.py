"""What evaluation writes and prints: CSV tables, two per-level plots, a terminal table, the worst films.

Files (each written atomically, `spinefm.io_utils`):
- `per_vertebra.csv`: `metrics.VERTEBRA_COLUMNS`, one line per ground-truth vertebra and per false positive;
- `per_image.csv`: `metrics.IMAGE_COLUMNS`, one line per film;
- `per_level.csv`: `PER_LEVEL_COLUMNS`, one line per level present in the ground truth, top to bottom;
- `per_level_dice.png`: box plot of the identified vertebrae's Dice per level;
- `identification_rate.png`: identification rate per level.
An undefined value (NaN or None) is an empty cell; flags are 1 / 0.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from spinefm.evaluation.metrics import IMAGE_COLUMNS, VERTEBRA_COLUMNS
from spinefm.io_utils import atomic_write_bytes, atomic_write_csv

PER_LEVEL_COLUMNS = ("level", "n", "identified", "identification_rate", "mean_dice", "matched_rate", "label_accuracy")
FILES = {
    "per_vertebra": "per_vertebra.csv",
    "per_image": "per_image.csv",
    "per_level": "per_level.csv",
    "per_level_dice": "per_level_dice.png",
    "identification_rate": "identification_rate.png",
}


def write_report(
    output_dir, vertebra_rows: Sequence[dict], image_rows: Sequence[dict], summary: dict
) -> dict[str, Path]:
    """Every file above into `output_dir`; returns their paths by the keys of `FILES`."""
    paths = {key: Path(output_dir) / name for key, name in FILES.items()}
    levels = [{"level": level, **values} for level, values in summary["per_level"].items()]
    atomic_write_csv(paths["per_vertebra"], _cells(vertebra_rows), VERTEBRA_COLUMNS)
    atomic_write_csv(paths["per_image"], _cells(image_rows), IMAGE_COLUMNS)
    atomic_write_csv(paths["per_level"], _cells(levels), PER_LEVEL_COLUMNS)
    dice = {level: [] for level in summary["per_level"]}
    for row in vertebra_rows:
        if row["kind"] == "gt" and row["identified"]:
            dice[row["level"]].append(row["best_dice"])
    _save(paths["per_level_dice"], _dice_boxes(dice))
    rates = {level: values["identification_rate"] for level, values in summary["per_level"].items()}
    _save(paths["identification_rate"], _rate_bars(rates, summary["settings"]["identify_dice"]))
    return paths


def worst_images(image_rows: Sequence[dict], k: int) -> list[dict]:
    """The `k` films with the lowest per-image Dice (misses count 0); films without ground truth are left out."""
    rated = [r for r in image_rows if _is_number(r["image_dice"])]
    return sorted(rated, key=lambda r: (r["image_dice"], str(r["image_id"])))[:k]


def format_table(summary: dict) -> str:
    """The headline figures as a plain-text table for a terminal."""
    settings, one = summary["settings"], summary["one_to_one"]
    counts = f"({summary['identified']} / {summary['n_gt']})"
    lines = [
        f"films {summary['n_images']} ({summary['n_images_with_gt']} with ground truth), "
        f"ground-truth vertebrae {summary['n_gt']}, predictions {summary['n_pred']}",
        f"SpineFM counting: identified = Dice > {settings['identify_dice']:.2f} with some prediction",
        _line("identification rate", f"{_pct(summary['identification_rate'])}  {counts}"),
        _line("mean Dice, identified", _num(summary["mean_dice_identified"])),
        _line("mean per-image Dice", f"{_num(summary['mean_image_dice'])}  (misses count 0)"),
        f"one-to-one: {settings['match_on']} > {settings['match_min']:.2f}",
        _line(
            "matched", f"{_pct(one['matched_rate'])}  ({one['matched']} / {summary['n_gt']}), missed {one['missed']}"
        ),
        _line("mean Dice / IoU", f"{_num(one['mean_dice'])} / {_num(one['mean_iou'])}"),
        _line("false positives", f"{one['false_positives']}  ({_num(one['false_positives_per_image'], 2)} per image)"),
        _line("level label exact / +-1", f"{_pct(one['label_accuracy'])} / {_pct(one['label_within_one'])}"),
    ]
    for name, title in (("centroid_error", "centroid error"), ("hd95", "HD95"), ("assd", "ASSD")):
        for unit in ("px", "mm"):
            stats = one[f"{name}_{unit}"]
            lines.append(_line(f"{title} {unit}", f"mean {_num(stats['mean'], 2)}  median {_num(stats['median'], 2)}"))
    if summary.get("map") is not None:
        ap = summary["map"]
        lines.append(f"mask mAP ({settings['map_classes']})")
        lines.append(_line("mAP / mAP50 / mAP75", f"{_num(ap['map'])} / {_num(ap['map_50'])} / {_num(ap['map_75'])}"))
    lines.append(f"{'level':<7}{'n':>6}{'identified':>12}{'Dice':>8}{'matched':>10}{'label':>9}")
    for level, v in summary["per_level"].items():
        lines.append(
            f"{level:<7}{v['n']:>6}{_pct(v['identification_rate']):>12}{_num(v['mean_dice']):>8}"
            f"{_pct(v['matched_rate']):>10}{_pct(v['label_accuracy']):>9}"
        )
    return "\n".join(lines)


def _dice_boxes(dice: dict[str, list[float]]) -> Figure:
    figure = Figure(figsize=(max(4.0, 0.5 * len(dice) + 1.5), 3.5), layout="constrained")
    axes = figure.add_subplot()
    axes.boxplot([[d for d in values if _is_number(d)] for values in dice.values()], tick_labels=list(dice))
    axes.set(xlabel="level", ylabel="Dice", title="Dice per level (identified vertebrae)", ylim=(0, 1.02))
    return figure


def _rate_bars(rates: dict[str, float], identify_dice: float) -> Figure:
    figure = Figure(figsize=(max(4.0, 0.5 * len(rates) + 1.5), 3.5), layout="constrained")
    axes = figure.add_subplot()
    axes.bar(list(rates), [r if _is_number(r) else 0.0 for r in rates.values()])
    axes.set(
        xlabel="level", ylabel="identification rate", title=f"Identified (Dice > {identify_dice:.2f})", ylim=(0, 1.02)
    )
    return figure


def _save(path: Path, figure: Figure) -> None:
    buffer = io.BytesIO()
    FigureCanvasAgg(figure)  # no pyplot: no global backend or figure registry
    figure.savefig(buffer, format="png", dpi=120)
    atomic_write_bytes(path, buffer.getvalue())


def _cells(rows: Sequence[dict]) -> list[dict]:
    return [{key: _cell(value) for key, value in row.items()} for row in rows]


def _cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return round(value, 6)
    return value


def _is_number(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _line(name: str, value: str) -> str:
    return f"  {name:<26}{value}"


def _num(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if _is_number(value) else "-"


def _pct(value) -> str:
    return f"{100 * value:.1f} %" if _is_number(value) else "-"
