import numpy as np
import pytest

from spinefm.data.masks import crop_iou
from spinefm.data.record import ImageRecord, Vertebra, tidy_vertebrae

SQUARE = [[10, 20], [19, 20], [19, 29], [10, 29]]  # pixel centres 10..19 x 20..29


def test_polygon_geometry_is_exact():
    v = Vertebra("l1", polygon=SQUARE)
    assert v.level == "L1"
    assert v.area() == pytest.approx(81.0)
    np.testing.assert_allclose(v.centroid(), [14.5, 24.5])
    np.testing.assert_allclose(v.box(), [10, 20, 19, 29])
    mask = v.to_mask(40, 40)
    assert mask.sum() == 100  # centres on the boundary count: 10 x 10 pixels
    assert mask[20, 10] and mask[29, 19] and not mask[19, 10] and not mask[20, 20]


def test_triangle_centroid_and_area():
    v = Vertebra("T4", polygon=[[0, 0], [6, 0], [0, 3]])
    assert v.area() == pytest.approx(9.0)
    np.testing.assert_allclose(v.centroid(), [2.0, 1.0])


def test_full_mask_is_stored_cropped():
    full = np.zeros((50, 60), np.uint8)
    full[5:9, 30:40] = 1
    v = Vertebra.from_full_mask("C3", full)
    assert v.mask.shape == (4, 10) and v.offset == (30, 5)
    np.testing.assert_array_equal(v.to_mask(50, 60), full.astype(bool))
    np.testing.assert_allclose(v.centroid(), [34.5, 6.5])
    np.testing.assert_allclose(v.box(), [30, 5, 40, 9])
    assert v.area() == 40


def test_to_mask_clips_outlines_leaving_the_image():
    v = Vertebra("L2", polygon=[[-5, -5], [4, -5], [4, 4], [-5, 4]])
    mask = v.to_mask(10, 10)
    assert mask.sum() == 25 and mask[:5, :5].all()


def test_outline_is_required_once():
    with pytest.raises(ValueError):
        Vertebra("L1")
    with pytest.raises(ValueError):
        Vertebra("L1", polygon=SQUARE, mask=np.ones((2, 2)))
    with pytest.raises(ValueError, match="unknown vertebral level"):
        Vertebra("X9", polygon=SQUARE)


def test_crop_iou_matches_hand_count():
    a = np.ones((4, 4), bool)
    b = np.ones((4, 4), bool)
    # b shifted by (2, 1): overlap 2 x 3 = 6; union 16 + 16 - 6 = 26
    assert crop_iou(a, (0, 0), b, (2, 1)) == pytest.approx(6 / 26)
    assert crop_iou(a, (0, 0), b, (10, 10)) == 0.0
    assert crop_iou(a, (0, 0), np.zeros((0, 0), bool), (0, 0)) == 0.0


def box(level, y, height=8, x=10):
    return Vertebra(level, polygon=[[x, y], [x + 10, y], [x + 10, y + height], [x, y + height]])


def test_tidy_orders_and_reports_every_defect():
    empty = Vertebra("L4", mask=np.zeros((3, 3), bool))
    tiny = Vertebra("L5", polygon=[[0, 0], [1, 0], [1, 1]])
    vertebrae = [box("L3", 60), box("L1", 20), box("L1", 200), box("L2", 40, x=10), empty, tiny, box("T11", 0)]
    kept, problems = tidy_vertebrae("img", vertebrae, min_area=4.0)
    assert [v.level for v in kept] == ["T11", "L1", "L2", "L3"]
    assert kept[1].centroid()[1] == pytest.approx(24)  # the first L1 is kept
    kinds = {(p.kind, p.level) for p in problems}
    assert ("empty_outline", "L4") in kinds
    assert ("degenerate_outline", "L5") in kinds
    assert ("duplicate_level", "L1") in kinds
    assert ("level_gap", "L1") in kinds  # T12 missing
    assert all(p.image_id == "img" for p in problems)


def test_tidy_reports_order_and_overlap_but_keeps():
    kept, problems = tidy_vertebrae("img", [box("L1", 50), box("L2", 20), box("L3", 52)])
    assert [v.level for v in kept] == ["L1", "L2", "L3"]
    kinds = {(p.kind, p.level) for p in problems}
    assert ("level_order", "L2") in kinds
    assert ("overlapping_outlines", "L3") in kinds
    _, clean = tidy_vertebrae("img", [box("L1", 0), box("L2", 12), box("L3", 24)])
    assert clean == []


def test_record_without_vertebrae_is_reported():
    _, problems = tidy_vertebrae("img", [])
    assert [p.kind for p in problems] == ["no_vertebrae"]


def test_record_validates_view_and_reads_in_memory_image():
    image = np.zeros((4, 4), np.uint16)
    record = ImageRecord("a", [box("L1", 0)], image=image, view="lateral_lumbar")
    assert record.load_image() is image and record.levels == ["L1"]
    with pytest.raises(ValueError, match="unknown view"):
        ImageRecord("a", [], view="sideways")
