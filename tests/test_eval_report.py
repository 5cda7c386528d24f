import csv
import math

import numpy as np
import pytest

from spinefm.data.record import Vertebra
from spinefm.evaluation.metrics import IMAGE_COLUMNS, VERTEBRA_COLUMNS, EvaluationSettings, MetricAccumulator
from spinefm.evaluation.report import PER_LEVEL_COLUMNS, format_table, worst_images, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def rect(level, x0, y0, x1, y1):
    return Vertebra(level, mask=np.ones((y1 - y0, x1 - x0), bool), offset=(x0, y0))


@pytest.fixture(scope="module")
def accumulator():
    accumulator = MetricAccumulator(EvaluationSettings(surface=True, map_classes="agnostic"))
    gt = [rect("L1", 0, 0, 10, 10), rect("L2", 0, 20, 10, 30)]
    accumulator.add(
        "perfect", gt, [rect("L1", 0, 0, 10, 10), rect("L2", 0, 20, 10, 30)], [0.9, 0.9], (40, 40), (0.5, 0.5)
    )
    accumulator.add("half", gt, [rect("L1", 5, 0, 15, 10)], [0.8], (40, 40))  # L1 at Dice 0.5, L2 missed
    accumulator.add("no_gt", [], [rect("L3", 20, 20, 30, 30)], [0.3], (40, 40))
    return accumulator


def read_csv(path):
    with open(path, newline="") as stream:
        reader = csv.DictReader(stream)
        return reader.fieldnames, list(reader)


def test_report_files_have_the_right_columns_and_plots_are_pngs(tmp_path, accumulator):
    summary = accumulator.summary()
    paths = write_report(tmp_path, accumulator.vertebra_rows, accumulator.image_rows, summary)
    columns, rows = read_csv(paths["per_vertebra"])
    assert tuple(columns) == VERTEBRA_COLUMNS
    assert [(r["image_id"], r["kind"], r["level"]) for r in rows] == [
        ("perfect", "gt", "L1"),
        ("perfect", "gt", "L2"),
        ("half", "gt", "L1"),
        ("half", "gt", "L2"),
        ("no_gt", "false_positive", ""),
    ]
    assert (rows[2]["identified"], float(rows[2]["best_dice"]), rows[2]["label_exact"]) == ("1", 0.5, "1")
    assert rows[3]["pred_index"] == "" and rows[3]["hd95_px"] == ""  # missed: undefined cells are empty
    assert rows[0]["hd95_mm"] == "0.0" and rows[2]["hd95_mm"] == ""  # mm only where spacing is known
    columns, rows = read_csv(paths["per_image"])
    assert tuple(columns) == IMAGE_COLUMNS
    assert [r["image_dice"] for r in rows] == ["1.0", "0.25", ""]
    columns, rows = read_csv(paths["per_level"])
    assert tuple(columns) == PER_LEVEL_COLUMNS
    assert [(r["level"], r["n"], r["identification_rate"]) for r in rows] == [("L1", "2", "1.0"), ("L2", "2", "0.5")]
    for key in ("per_level_dice", "identification_rate"):
        assert paths[key].read_bytes().startswith(PNG_SIGNATURE)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary file


def test_format_table_shows_the_headline_figures(accumulator):
    table = format_table(accumulator.summary())
    assert "films 3 (2 with ground truth)" in table
    assert "75.0 %  (3 / 4)" in table  # identification rate
    assert "0.833" in table  # mean Dice over identified: (1 + 1 + 0.5) / 3
    assert "0.625" in table  # mean per-image Dice: (1 + 0.25) / 2
    assert "1  (0.33 per image)" in table  # false positives
    assert "mAP / mAP50 / mAP75" in table
    lines = table.splitlines()
    assert any(line.split()[:2] == ["L2", "2"] and "50.0 %" in line for line in lines)
    assert not any("nan" in line for line in lines)  # undefined figures print as "-"


def test_worst_images_lowest_dice_first_without_films_lacking_ground_truth(accumulator):
    assert [r["image_id"] for r in worst_images(accumulator.image_rows, 5)] == ["half", "perfect"]
    assert [r["image_id"] for r in worst_images(accumulator.image_rows, 1)] == ["half"]
    assert math.isnan(accumulator.image_rows[2]["image_dice"])
