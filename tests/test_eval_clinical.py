from pathlib import Path

import numpy as np
import pytest

from spinefm.data.levels import level_range
from spinefm.data.readers.aasce import AasceReader
from spinefm.data.record import Vertebra
from spinefm.evaluation.clinical import (
    COBB_KEYS,
    clinical_row,
    cobb_angles,
    endplates,
    fit_endplates,
    lordosis,
    smape,
    smape_per_film,
)
from spinefm.evaluation.clinical_report import clinical_summary

REAL_ROOT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "aasce_train"
SPINE = level_range("T1", "L5")


def C_SHAPE(k):  # centres bulging to one side
    return 30 * np.sin(np.pi * k / 16)


def box(centre, angle, width=40.0, height=20.0, wedge=0.0):
    """Corners TL, TR, BR, BL of a `width` x `height` body tilted by `angle` degrees about `centre`;
    a `wedge` (degrees) tilts the upper endplate by +wedge/2 and the lower one by -wedge/2."""
    half = np.tan(np.radians(wedge / 2)) * width / 2
    w, h = width / 2, height / 2
    corners = np.array([[-w, -h - half], [w, -h + half], [w, h - half], [-w, h + half]])
    a = np.radians(angle)
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return corners @ rotation.T + np.asarray(centre, float)


def as_mask(level, polygon):
    crop, offset = Vertebra(level, polygon=polygon).mask_crop()
    return Vertebra(level, mask=crop, offset=offset)


def spine(tilts, shift=lambda k: 0.0, levels=SPINE, masks=False):
    """One vertebra per level, 40 px apart, centre x = 100 + shift(k), midline tilt tilts.get(level, 0)."""
    made = []
    for k, level in enumerate(levels):
        polygon = box((100 + shift(k), 50 + 40 * k), tilts.get(level, 0.0))
        made.append(as_mask(level, polygon) if masks else Vertebra(level, polygon=polygon))
    return made


def angles(result):
    return [result[key] for key in COBB_KEYS]


def test_corner_polygon_endplates_are_the_annotated_pairs():
    corners = np.array([[10.0, 5], [50, 9], [48, 30], [12, 27]])  # TL, TR, BR, BL
    plates = endplates(Vertebra("T4", polygon=corners))
    np.testing.assert_array_equal(plates.upper, [[10, 5], [50, 9]])
    np.testing.assert_array_equal(plates.lower, [[12, 27], [48, 30]])
    assert plates.upper_angle == pytest.approx(np.degrees(np.arctan2(4, 40)))
    assert plates.lower_angle == pytest.approx(np.degrees(np.arctan2(3, 36)))


@pytest.mark.parametrize("angle", [-23.0, 0.0, 17.0])
def test_rotated_rectangle_mask_endplates_within_a_degree(angle):
    plates = endplates(as_mask("T8", box((200, 150), angle, width=80, height=40)))
    assert plates.upper_angle == pytest.approx(angle, abs=1)
    assert plates.lower_angle == pytest.approx(angle, abs=1)
    assert plates.upper_mid[1] < plates.lower_mid[1]
    assert np.linalg.norm(plates.upper_mid - plates.lower_mid) == pytest.approx(40, abs=2)


def test_wedge_mask_endplates_differ_by_the_wedge():
    plates = endplates(as_mask("L1", box((200, 150), 10, width=80, height=40, wedge=12)))
    assert plates.upper_angle - plates.lower_angle == pytest.approx(12, abs=2)
    assert plates.midline_angle == pytest.approx(10, abs=1)


def test_spine_direction_tells_endplates_from_sides_beyond_45_degrees():
    crop, (x0, y0) = Vertebra("T8", polygon=box((200, 150), 55, width=60, height=44)).mask_crop()
    rows, cols = np.nonzero(crop)
    pixels = np.stack([cols + x0, rows + y0], axis=1).astype(float)
    across = np.radians(55 + 90)
    tilted = fit_endplates(pixels, spine_direction=(np.cos(across), np.sin(across)))
    assert tilted.upper_angle == pytest.approx(55, abs=1) and tilted.lower_angle == pytest.approx(55, abs=1)
    upright = fit_endplates(pixels)  # a vertical spine makes the lateral sides the endplates
    assert upright.upper_angle == pytest.approx(55 - 90, abs=1)


def test_empty_or_tiny_outline_has_no_endplates():
    for mask_tilt in ("endplates", "centreline"):
        assert endplates(Vertebra("T1", mask=np.zeros((5, 5), bool)), mask_tilt=mask_tilt) is None
        assert endplates(Vertebra("T1", mask=np.ones((1, 1), bool)), mask_tilt=mask_tilt) is None
    with pytest.raises(ValueError, match="mask_tilt"):
        endplates(Vertebra("T1", mask=np.ones((5, 5), bool)), mask_tilt="corners")


@pytest.mark.parametrize("lean", [-12.0, 0.0, 20.0])
def test_centreline_tilt_is_the_spines_not_the_masks(lean):
    # a spine leaning `lean` degrees to the right on its way down: its vertebrae tilt by -lean
    mask = as_mask("T8", box((200, 150), 15, width=80, height=40))
    down = (np.sin(np.radians(lean)), np.cos(np.radians(lean)))
    plates = endplates(mask, spine_direction=down, mask_tilt="centreline")
    assert plates.upper_angle == pytest.approx(-lean) and plates.lower_angle == pytest.approx(-lean)
    # the two sides bound the mask across the spine line, and span it along
    crop, (x0, y0) = mask.mask_crop()
    rows, cols = np.nonzero(crop)
    across = np.stack([cols + x0, rows + y0], axis=1) @ np.asarray(down)
    assert plates.upper[0] @ down == pytest.approx(across.min())
    assert plates.lower[1] @ down == pytest.approx(across.max())
    assert endplates(mask, spine_direction=down).midline_angle == pytest.approx(15, abs=1)  # fitted: the mask's


def test_cobb_from_the_centreline_of_a_bent_spine():
    # flat masks on a spine running down 10 degrees to the right to T9, then 10 degrees back: away
    # from the bend the spine line through two levels either side is exact, so the tilts are -10 and
    # +10 degrees and the major curve 20; fitted endplates see only the flat masks
    run = 40 * np.tan(np.radians(10))
    vertebrae = spine({}, shift=lambda k: run * min(k, 16 - k), masks=True)
    centreline = cobb_angles(vertebrae, image_height=800, mask_tilt="centreline")
    assert centreline["pt"] == pytest.approx(20, abs=1)  # centres of rasterised masks: 20.5
    assert centreline["shape"] == "C"
    assert cobb_angles(vertebrae, image_height=800)["pt"] < 2


@pytest.mark.parametrize("masks", [False, True])
def test_straight_spine_is_zero(masks):
    result = cobb_angles(spine({}, masks=masks), image_height=800)
    assert angles(result) == pytest.approx([0, 0, 0], abs=0.5)
    assert result["shape"] == "C"


@pytest.mark.parametrize("masks", [False, True])
def test_opposite_tilts_add_up(masks):
    result = cobb_angles(spine({"T4": 8.0, "T10": -13.0}, C_SHAPE, masks=masks), image_height=800)
    assert result["shape"] == "C"  # the major curve T4-T10, then top to its upper end, its lower end to the bottom
    assert angles(result) == pytest.approx([21, 8, 13], abs=0.1 if not masks else 1)
    assert [result[f"{key}_levels"] for key in COBB_KEYS] == [("T4", "T10"), ("T1", "T4"), ("T10", "L5")]


TILTS = {"T3": 10.0, "T7": -20.0, "T12": 15.0, "L3": -5.0}


def test_c_curve_measures_from_the_end_vertebrae():
    result = cobb_angles(spine(TILTS, shift=lambda k: 60 * np.sin(np.pi * k / 16)), image_height=1000)
    assert result["shape"] == "C"
    assert angles(result) == pytest.approx([35, 20, 15])  # T7-T12, T1-T7, T12-L5
    assert result["mt_levels"] == ("T1", "T7") and result["tl_levels"] == ("T12", "L5")


def test_s_curve_in_upper_half_looks_above_and_below():
    # the major curve's ends (T7, T12; lower endplates at y 300 and 500) lie above the middle (500)
    result = cobb_angles(spine(TILTS, shift=lambda k: 60 * np.sin(2 * np.pi * k / 16)), image_height=1000)
    assert result["shape"] == "S"
    assert angles(result) == pytest.approx([35, 30, 20])
    assert [result[f"{key}_levels"] for key in COBB_KEYS] == [("T7", "T12"), ("T3", "T7"), ("T12", "L3")]


def test_s_curve_in_lower_half_looks_twice_above():
    result = cobb_angles(spine(TILTS, shift=lambda k: 60 * np.sin(2 * np.pi * k / 16)), image_height=600)
    assert angles(result) == pytest.approx([35, 30, 10])
    assert result["mt_levels"] == ("T3", "T7") and result["tl_levels"] == ("T1", "T3")


def test_missing_levels_use_what_exists():
    vertebrae = [v for v in spine({"T4": 8.0, "T10": -13.0}, C_SHAPE) if v.level not in ("T1", "T2", "T7", "L5")]
    result = cobb_angles(vertebrae[::-1], image_height=800)  # any order
    assert angles(result) == pytest.approx([21, 8, 13])
    assert result["mt_levels"] == ("T3", "T4") and result["tl_levels"] == ("T10", "L4")


def test_too_few_vertebrae_give_nan_without_crashing():
    one = spine({})[:1]
    empty = Vertebra("T5", mask=np.zeros((3, 3), bool))
    for vertebrae in ([], one, one + [empty], [empty]):
        result = cobb_angles(vertebrae)
        assert np.isnan(angles(result)).all() and result["pt_levels"] is None and result["shape"] is None
    two = cobb_angles(spine({"T2": 5.0})[:2] + [empty])
    assert angles(two) == pytest.approx([5, 0, 0])


def test_levels_outside_the_range_and_duplicates_are_ignored():
    vertebrae = spine({"T4": 8.0, "T10": -13.0}, C_SHAPE)
    extra = [Vertebra("C7", polygon=box((100, 10), 40)), Vertebra("S1", polygon=box((100, 730), -40))]
    duplicate = [Vertebra("T6", polygon=box((100, 250), 60))]
    result = cobb_angles(vertebrae + extra + duplicate, image_height=800)
    assert angles(result) == pytest.approx([21, 8, 13])
    assert cobb_angles(extra + vertebrae, levels=None)["pt"] == pytest.approx(80)


@pytest.mark.parametrize("masks", [False, True])
def test_lumbar_lordosis_between_upper_endplates_of_l1_and_s1(masks):
    levels = level_range("L1", "S1")
    tilts = {"L1": -20.0, "L3": 0.0, "S1": 35.0}
    result = lordosis(spine(tilts, levels=levels, masks=masks), "lateral_lumbar")
    assert result == {"lumbar_lordosis": pytest.approx(55, abs=0.1 if not masks else 1.5)}


def test_cervical_lordosis_between_lower_endplates_of_c2_and_c7():
    vertebrae = [
        Vertebra("C2", polygon=box((100, 50), 0, wedge=-20)),  # lower endplate at +10
        Vertebra("C5", polygon=box((100, 170), 0)),
        Vertebra("C7", polygon=box((100, 250), -15)),
    ]
    assert lordosis(vertebrae, "lateral_cervical") == {"cervical_lordosis": pytest.approx(25)}
    assert np.isnan(lordosis(vertebrae[1:], "lateral_cervical")["cervical_lordosis"])
    assert lordosis(vertebrae, "ap_thoracolumbar") == {}


def test_clinical_row_per_view():
    row = clinical_row(spine({"T4": 8.0, "T10": -13.0}, C_SHAPE), "ap_thoracolumbar", image_height=800)
    assert [row[f"cobb_{key}"] for key in COBB_KEYS] == pytest.approx([21, 8, 13])
    assert row["cobb_pt_levels"] == "T4-T10" and row["cobb_shape"] == "C"
    assert np.isnan(clinical_row([], "ap_thoracolumbar")["cobb_pt"])
    assert set(clinical_row([], "lateral_lumbar")) == {"lumbar_lordosis"}
    assert set(clinical_row([], "lateral_cervical")) == {"cervical_lordosis"}
    assert clinical_row([], None) == {}


def test_smape_by_hand():
    pred = [[10, 20, 5], [0, 0, 0], [30, 10, 0]]
    gt = [[12, 18, 5], [0, 0, 0], [20, 10, 0]]
    per_film = smape_per_film(pred, gt)
    assert per_film == pytest.approx([4 / 70, 0, 10 / 70])
    assert smape(pred, gt) == pytest.approx(100 * (4 / 70 + 0 + 10 / 70) / 3)
    assert smape([[np.nan, 1, 1], [10, 20, 5]], [[1, 1, 1], [12, 18, 5]]) == pytest.approx(100 * 4 / 70)
    assert np.isnan(smape([[np.nan, 0, 0]], [[1, 1, 1]]))
    with pytest.raises(ValueError):
        smape([[1, 2, 3]], [[1, 2]])


ALL_FILMS = {"max_height_ratio": float("inf")}  # keep scrambled corner groups: angles.csv was computed with them


def real_cobb(reader, from_masks=False, mask_tilts=("endplates",)):
    """Cobb angles per film as {mask_tilt: (N, 3)} and the films' angles.csv rows (N, 3)."""
    pred, gt = {tilt: [] for tilt in mask_tilts}, []
    for record in reader:
        vertebrae = record.vertebrae
        if from_masks:
            vertebrae = [Vertebra(v.level, mask=m, offset=offset) for v in vertebrae for m, offset in [v.mask_crop()]]
        height = record.image_shape()[0]
        for tilt in mask_tilts:
            pred[tilt].append(angles(cobb_angles(vertebrae, image_height=height, mask_tilt=tilt)))
        gt.append(record.meta["cobb_angles"])
    return {tilt: np.array(angles) for tilt, angles in pred.items()}, np.array(gt)


@pytest.mark.slow
@pytest.mark.skipif(not REAL_ROOT.is_dir(), reason="shared AASCE data not present")
def test_real_cobb_from_corners_reproduces_angles_csv():
    # angles.csv was computed from the corners in their stored order; read that way, every film
    # but one matches (its L5 corners are scrambled: the challenge's vector arithmetic gives 156 deg;
    # the reader drops that group unless told otherwise, as ALL_FILMS does)
    pred, gt = real_cobb(AasceReader(REAL_ROOT, split="all", order_by_position=False, **ALL_FILMS))
    pred = pred["endplates"]
    assert len(gt) == 481
    assert (np.abs(pred - gt).max(axis=1) < 0.01).sum() >= 480
    assert smape(pred, gt) < 0.15  # measured 0.105
    # in top-to-bottom order (the reader's default) the 23 reordered files, 18 of which list T1
    # last, shift about 20 films' reference angles
    pred, gt = real_cobb(AasceReader(REAL_ROOT, split="all", **ALL_FILMS))
    pred = pred["endplates"]
    assert smape(pred, gt) < 0.6  # measured 0.494
    assert np.abs(pred - gt).mean(axis=0) == pytest.approx([0, 0, 0], abs=0.45)


@pytest.mark.slow
@pytest.mark.skipif(not REAL_ROOT.is_dir(), reason="shared AASCE data not present")
def test_real_cobb_from_rasterised_masks():
    # every third film (161), for time: on all 481 SMAPE was 1.213 from fitted endplates (on every
    # other film 1.282) and 12.79 from the centreline, what that tilt gives up on exact masks
    reader = AasceReader(REAL_ROOT, split="all", **ALL_FILMS)
    every_third = (reader[i] for i in range(0, len(reader), 3))  # indexed: the others are never read
    pred, gt = real_cobb(every_third, from_masks=True, mask_tilts=("endplates", "centreline"))
    assert smape(pred["endplates"], gt) < 1.45  # measured 1.155
    assert np.abs(pred["endplates"] - gt).mean(axis=0) == pytest.approx([0, 0, 0], abs=1.0)  # 0.90, 0.36, 0.56
    assert smape(pred["centreline"], gt) < 16  # measured 13.82


def test_clinical_summary_names_the_tilt_and_scores_by_hand():
    angles_of = {"pred": (10.0, 20.0, 5.0), "reference": (12.0, 18.0, 5.0), "annotated": (12.0, 18.0, 5.0)}
    row = {
        f"{source}_cobb_{key}": angle for source, values in angles_of.items() for key, angle in zip(COBB_KEYS, values)
    }
    summary = clinical_summary([row], cobb_tilt="centreline")
    assert summary["cobb_tilt"] == "centreline" and summary["cobb_films"] == 1
    assert summary["cobb_smape_vs_reference"] == pytest.approx(100 * 4 / 70)
    assert summary["cobb_mae_vs_annotated"] == pytest.approx({"pt": 2.0, "mt": 2.0, "tl": 0.0})
    assert clinical_summary([{"image_id": "lateral"}], cobb_tilt="centreline") == {}  # no Cobb angle, no tilt
