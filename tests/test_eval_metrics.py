import math

import numpy as np
import pytest

from spinefm.data.record import Vertebra
from spinefm.evaluation.metrics import EvaluationSettings, MetricAccumulator, evaluate_film

SHAPE = (40, 40)
NO_SURFACE = EvaluationSettings(surface=False, map_classes=None)


def rect(level, x0, y0, x1, y1):
    return Vertebra(level, mask=np.ones((y1 - y0, x1 - x0), bool), offset=(x0, y0))


def film(gt, pred, settings=NO_SURFACE, spacing_mm=None, scores=None):
    return evaluate_film("f", gt, pred, scores, spacing_mm, settings)


def gt_rows(result):
    return [r for r in result.vertebra_rows if r["kind"] == "gt"]


def fp_rows(result):
    return [r for r in result.vertebra_rows if r["kind"] == "false_positive"]


def test_one_prediction_identifies_two_vertebrae_but_matches_one():
    # two 10 x 5 vertebrae and one 10 x 10 prediction over both: Dice 2 * 50 / 150 = 2/3 with each
    result = film([rect("L1", 10, 10, 20, 15), rect("L2", 10, 15, 20, 20)], [rect("L1", 10, 10, 20, 20)])
    rows, image = gt_rows(result), result.image_row
    assert [(r["identified"], r["best_pred"]) for r in rows] == [(True, 0), (True, 0)]
    assert [r["best_dice"] for r in rows] == pytest.approx([2 / 3, 2 / 3])
    assert image["identification_rate"] == 1.0 and image["image_dice"] == pytest.approx(2 / 3)
    assert sorted(r["pred_index"] is None for r in rows) == [False, True]  # one matched, one missed
    assert (image["matched"], image["missed"], image["false_positives"]) == (1, 1, 0)
    assert image["mean_match_dice"] == pytest.approx(2 / 3) and image["mean_match_iou"] == pytest.approx(0.5)


def test_a_miss_counts_zero_in_the_image_dice_even_with_some_overlap():
    # L1 found exactly; L2's only prediction overlaps 30 px of 100: Dice 0.3, not identified
    gt = [rect("L1", 0, 0, 10, 10), rect("L2", 0, 20, 10, 30)]
    result = film(gt, [rect("L1", 0, 0, 10, 10), rect("L2", 7, 20, 17, 30)])
    rows, image = gt_rows(result), result.image_row
    assert [r["identified"] for r in rows] == [True, False]
    assert rows[1]["best_dice"] == pytest.approx(0.3) and rows[1]["pred_index"] is None
    assert image["identification_rate"] == 0.5
    assert image["mean_dice_identified"] == pytest.approx(1.0)
    assert image["image_dice"] == pytest.approx(0.5)  # (1 + 0) / 2, not (1 + 0.3) / 2
    assert (image["matched"], image["missed"], image["false_positives"]) == (1, 1, 1)


def test_an_extra_prediction_is_a_false_positive_row():
    result = film([rect("L1", 0, 0, 10, 10)], [rect("L1", 0, 0, 10, 10), rect("L2", 20, 20, 30, 30)], scores=[0.9, 0.2])
    (extra,) = fp_rows(result)
    assert (extra["level"], extra["pred_index"], extra["pred_level"], extra["score"]) == (None, 1, "L2", 0.2)
    assert math.isnan(extra["best_dice"]) and extra["identified"] is None
    assert result.image_row["false_positives"] == 1 and result.image_row["identification_rate"] == 1.0


def test_an_empty_predicted_mask_identifies_nothing_and_is_a_false_positive():
    empty = Vertebra("L1", mask=np.zeros((10, 10), bool), offset=(0, 0))
    result = film([rect("L1", 0, 0, 10, 10)], [empty])
    (row,) = gt_rows(result)
    assert row["best_dice"] == 0.0 and not row["identified"]
    assert row["best_pred"] is None and row["pred_index"] is None
    assert len(fp_rows(result)) == 1
    assert (result.image_row["false_positives"], result.image_row["missed"]) == (1, 1)


def test_no_predictions_misses_everything():
    image = film([rect("L1", 0, 0, 10, 10), rect("L2", 0, 20, 10, 30)], []).image_row
    assert (image["identified"], image["identification_rate"], image["image_dice"]) == (0, 0.0, 0.0)
    assert (image["matched"], image["missed"], image["false_positives"]) == (0, 2, 0)
    assert math.isnan(image["mean_dice_identified"])


def test_a_film_without_ground_truth_only_adds_false_positives():
    accumulator = MetricAccumulator(NO_SURFACE)
    accumulator.add("good", [rect("L1", 0, 0, 10, 10)], [rect("L1", 0, 0, 10, 10)], [0.9], SHAPE)
    empty = accumulator.add("empty", [], [rect("L1", 0, 0, 10, 10), rect("L2", 20, 20, 30, 30)], [0.9, 0.8], SHAPE)
    image = empty.image_row
    assert all(
        math.isnan(image[k]) for k in ("identification_rate", "mean_dice_identified", "image_dice", "matched_rate")
    )
    assert (image["false_positives"], len(fp_rows(empty)), image["missed"]) == (2, 2, 0)
    summary = accumulator.summary()
    assert summary["identification_rate"] == 1.0 and summary["mean_image_dice"] == 1.0  # NaN row left out
    assert (summary["n_images"], summary["n_images_with_gt"]) == (2, 1)
    assert summary["one_to_one"]["false_positives_per_image"] == 1.0  # 2 false positives over 2 films


def test_level_labels_exact_and_within_one():
    # T12..L3 then L5, predicted one level low except L1; L5 -> S1 is one step over the optional L6
    truth = ["T12", "L1", "L2", "L3", "L5"]
    guess = ["L1", "L1", "L3", "L5", "S1"]
    gt = [rect(level, 0, 6 * i, 10, 6 * i + 5) for i, level in enumerate(truth)]
    pred = [rect(level, 0, 6 * i, 10, 6 * i + 5) for i, level in enumerate(guess)]
    result = film(gt, pred)
    rows = gt_rows(result)
    assert [r["label_exact"] for r in rows] == [False, True, False, False, False]
    assert [r["label_within_one"] for r in rows] == [True, True, True, False, True]
    assert result.image_row["label_accuracy"] == pytest.approx(1 / 5)
    assert result.image_row["label_within_one"] == pytest.approx(4 / 5)


def test_centroid_error_in_pixels_and_anisotropic_mm():
    # shifted 3 columns and 1 row; rows 2 mm, columns 0.5 mm: (1.5 mm, 2 mm) -> 2.5 mm
    gt, pred = [rect("L1", 10, 10, 20, 20)], [rect("L1", 13, 11, 23, 21)]
    (row,) = gt_rows(film(gt, pred, spacing_mm=(2.0, 0.5)))
    assert row["centroid_error_px"] == pytest.approx(math.sqrt(10))
    assert row["centroid_error_mm"] == pytest.approx(2.5)
    (row,) = gt_rows(film(gt, pred))
    assert math.isnan(row["centroid_error_mm"])


def test_boundary_distances_of_a_matched_pair():
    # the shifted squares of test_eval_matching: HD95 2 px / 1 mm, ASSD 1 px / 19/36 mm
    settings = EvaluationSettings(surface=True, map_classes=None)
    result = film([rect("L1", 10, 10, 20, 20)], [rect("L1", 12, 10, 22, 20)], settings, spacing_mm=(2.0, 0.5))
    (row,) = gt_rows(result)
    assert (row["hd95_px"], row["hd95_mm"]) == pytest.approx((2.0, 1.0))
    assert (row["assd_px"], row["assd_mm"]) == pytest.approx((1.0, 19 / 36))


def test_matching_on_iou_is_stricter_than_on_dice():
    gt, pred = [rect("L1", 0, 0, 10, 10)], [rect("L1", 5, 0, 15, 10)]  # Dice 0.5, IoU 1/3
    assert (
        film(gt, pred, EvaluationSettings(match_on="dice", surface=False, map_classes=None)).image_row["matched"] == 1
    )
    assert film(gt, pred, EvaluationSettings(match_on="iou", surface=False, map_classes=None)).image_row["matched"] == 0


def test_summary_over_films_and_levels():
    accumulator = MetricAccumulator(NO_SURFACE)
    gt = [rect("L1", 0, 0, 10, 10), rect("L2", 0, 20, 10, 30)]
    accumulator.add("a", gt, [rect("L1", 0, 0, 10, 10), rect("L2", 0, 20, 10, 30)], None, SHAPE)  # both exact
    accumulator.add("b", gt, [rect("L1", 5, 0, 15, 10)], None, SHAPE)  # L1 at Dice 0.5, L2 missed
    summary = accumulator.summary()
    assert summary["identification_rate"] == pytest.approx(3 / 4)
    assert summary["mean_dice_identified"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert summary["mean_image_dice"] == pytest.approx((1.0 + 0.25) / 2)
    assert summary["per_level"]["L1"] == pytest.approx(
        {
            "n": 2,
            "identified": 2,
            "identification_rate": 1.0,
            "mean_dice": 0.75,
            "matched_rate": 1.0,
            "label_accuracy": 1.0,
        }
    )
    assert summary["per_level"]["L2"]["identification_rate"] == 0.5 and list(summary["per_level"]) == ["L1", "L2"]
    one = summary["one_to_one"]
    assert (one["matched"], one["missed"], one["false_positives"]) == (3, 1, 0)
    assert one["mean_iou"] == pytest.approx((1 + 1 + 1 / 3) / 3)
    assert one["centroid_error_px"] == pytest.approx({"mean": 5 / 3, "median": 0.0})
    assert math.isnan(one["centroid_error_mm"]["mean"])  # no spacing known
    assert summary["map"] is None


def map_of(settings, pred_levels, shift=0):
    accumulator = MetricAccumulator(settings)
    levels = ["L1", "L2", "L3"]
    gt = [rect(level, 5, 2 + 12 * i, 25, 12 + 12 * i) for i, level in enumerate(levels)]
    pred = [rect(level, 5 + shift, 2 + 12 * i, 25 + shift, 12 + 12 * i) for i, level in enumerate(pred_levels)]
    accumulator.add("f", gt, pred, [0.9, 0.8, 0.7], SHAPE)
    return accumulator.summary()["map"]


def test_mask_map_is_one_for_perfect_predictions_and_lower_when_degraded():
    agnostic = EvaluationSettings(surface=False, map_classes="agnostic")
    assert map_of(agnostic, ["L1", "L2", "L3"]) == pytest.approx({"map": 1.0, "map_50": 1.0, "map_75": 1.0})
    shifted = map_of(agnostic, ["L1", "L2", "L3"], shift=4)  # IoU 16/24 = 0.67: found at 0.5, not at 0.75
    assert shifted["map_50"] == pytest.approx(1.0) and shifted["map_75"] == pytest.approx(0.0)
    assert shifted["map"] < 1.0
    # wrong labels cost nothing class-agnostically, but do with one class per level
    assert map_of(agnostic, ["L2", "L3", "L4"])["map"] == pytest.approx(1.0)
    assert map_of(EvaluationSettings(surface=False, map_classes="levels"), ["L2", "L3", "L4"])["map"] < 0.5


def test_settings_reject_unknown_choices():
    with pytest.raises(ValueError, match="match_on"):
        EvaluationSettings(match_on="hausdorff")
    with pytest.raises(ValueError, match="map_classes"):
        EvaluationSettings(map_classes="per_class")
    with pytest.raises(ValueError, match="cobb_tilt"):
        EvaluationSettings(cobb_tilt="corners")


def test_scores_must_match_predictions():
    with pytest.raises(ValueError, match="1 scores for 2"):
        film([], [rect("L1", 0, 0, 5, 5), rect("L2", 10, 10, 15, 15)], scores=[0.5])
