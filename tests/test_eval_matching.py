import numpy as np
import pytest

from spinefm.data.record import Vertebra
from spinefm.evaluation.matching import one_to_one, overlap_matrices, tight_crop
from spinefm.evaluation.surface import surface_distances


def rect(x0, y0, x1, y1, level="L1"):
    return Vertebra(level, mask=np.ones((y1 - y0, x1 - x0), bool), offset=(x0, y0))


def crops(*vertebrae):
    return [tight_crop(v) for v in vertebrae]


def test_overlap_of_shifted_rectangles_by_hand():
    # 10 x 10 squares, the second shifted 5 px right: intersection 50, union 150
    dice, iou = overlap_matrices(crops(rect(0, 0, 10, 10)), crops(rect(5, 0, 15, 10), rect(20, 20, 30, 30)))
    assert iou == pytest.approx(np.array([[1 / 3, 0.0]]))
    assert dice == pytest.approx(np.array([[0.5, 0.0]]))


def test_crop_overlaps_equal_full_mask_overlaps_on_random_masks():
    rng = np.random.default_rng(0)
    shape = (40, 40)

    def blob():  # a noisy rectangle somewhere on the grid
        full = np.zeros(shape, bool)
        (y, x), (h, w) = rng.integers(0, 30, 2), rng.integers(3, 12, 2)
        full[y : y + h, x : x + w] = rng.random((h, w)) > 0.2
        return full

    fulls_gt = [rng.random(shape) > 0.6 for _ in range(2)] + [blob() for _ in range(3)]
    fulls_pred = [rng.random(shape) > 0.5 for _ in range(2)] + [blob() for _ in range(3)]
    gt = [Vertebra.from_full_mask("L1", m) for m in fulls_gt]
    # predictions as the loop gives them: masks on a larger, padded patch
    pred = [Vertebra("L1", mask=np.pad(m, 7), offset=(-7, -7)) for m in fulls_pred]
    dice, iou = overlap_matrices(crops(*gt), crops(*pred))
    for g, a in enumerate(fulls_gt):
        for p, b in enumerate(fulls_pred):
            inter = np.logical_and(a, b).sum()
            assert iou[g, p] == pytest.approx(inter / np.logical_or(a, b).sum())
            assert dice[g, p] == pytest.approx(2 * inter / (a.sum() + b.sum()))


def test_empty_mask_overlaps_nothing():
    empty = Vertebra("L1", mask=np.zeros((10, 10), bool), offset=(0, 0))
    dice, iou = overlap_matrices(crops(rect(0, 0, 10, 10), empty), crops(empty, rect(0, 0, 10, 10)))
    assert dice.tolist() == [[0.0, 1.0], [0.0, 0.0]]
    assert iou.tolist() == [[0.0, 1.0], [0.0, 0.0]]


def test_tight_crop_drops_the_empty_margin_of_a_patch():
    patch = np.zeros((20, 20), bool)
    patch[5:8, 2:6] = True
    mask, offset = tight_crop(Vertebra("L1", mask=patch, offset=(100, 200)))
    assert mask.shape == (3, 4) and mask.all() and offset == (102, 205)


def test_one_to_one_maximises_the_total_not_greedily():
    # greedy would take (0, 0) = 0.9 and be left with (1, 1) = 0.1
    assert sorted(one_to_one(np.array([[0.9, 0.8], [0.85, 0.1]]), 0.4)) == [(0, 1), (1, 0)]


def test_one_to_one_keeps_only_pairs_above_the_minimum():
    assert one_to_one(np.array([[0.5, 0.0], [0.0, 0.4]]), 0.4) == [(0, 0)]
    # on raw scores the cross pairs sum highest (0.84) but (1, 0) = 0.39 is then dropped;
    # with sub-minimum scores zeroed first, the better kept pair (0, 0) = 0.5 wins
    assert one_to_one(np.array([[0.5, 0.45], [0.39, 0.0]]), 0.4) == [(0, 0)]


@pytest.mark.parametrize("shape", [(0, 3), (2, 0), (0, 0)])
def test_one_to_one_without_candidates(shape):
    assert one_to_one(np.zeros(shape), 0.4) == []


def squares_shifted_two_columns():
    # 10 x 10 squares at rows 10..19, columns 10..19 and 12..21
    return (np.ones((10, 10), bool), (10, 10)), (np.ones((10, 10), bool), (12, 10))


def test_hd95_and_assd_of_shifted_squares_in_pixels():
    # each direction, over the 36 boundary pixels: 16 at 0, 4 at 1 (next to corners), 16 at 2
    (a, oa), (b, ob) = squares_shifted_two_columns()
    hd95, assd = surface_distances(a, oa, b, ob)
    assert hd95 == pytest.approx(2.0)
    assert assd == pytest.approx((4 * 1 + 16 * 2) / 36)


def test_hd95_and_assd_of_shifted_squares_with_anisotropic_spacing():
    # rows 2 mm, columns 0.5 mm: 16 at 0, 2 at 0.5 mm, 18 at 1 mm (a swapped spacing gives other values)
    (a, oa), (b, ob) = squares_shifted_two_columns()
    hd95, assd = surface_distances(a, oa, b, ob, spacing=(2.0, 0.5))
    assert hd95 == pytest.approx(1.0)
    assert assd == pytest.approx((2 * 0.5 + 18 * 1.0) / 36)


def test_hd95_is_the_larger_directed_percentile():
    # A: one pixel; B: that pixel and one 10 columns away. A -> B: [0]; B -> A: [0, 10]
    one = np.ones((1, 1), bool)
    two = np.zeros((1, 11), bool)
    two[0, [0, 10]] = True
    hd95, assd = surface_distances(one, (0, 0), two, (0, 0))
    assert hd95 == pytest.approx(9.5)  # percentile 95 of [0, 10]; the pooled [0, 0, 10] would give 9.0
    assert assd == pytest.approx(10 / 3)


def test_surface_distances_of_an_empty_mask_are_nan():
    hd95, assd = surface_distances(np.ones((3, 3), bool), (0, 0), np.zeros((0, 0), bool), (0, 0))
    assert np.isnan(hd95) and np.isnan(assd)
