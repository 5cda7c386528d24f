"""Seed choice, ordering along the spine, de-duplication, final masks, and exact crops, pastes and resampling."""

import cv2
import numpy as np
import pytest

from helpers.oracles import middle, oracle_loop, phantom
from spinefm.data.patches import crop_patch
from spinefm.pipeline import MaskCrop
from spinefm.pipeline.core.geometry import best_run, order_along_spine
from spinefm.pipeline.core.patching import paste, resample
from spinefm.pipeline.core.postprocess import final_mask
from spinefm.pipeline.core.selection import deduplicate
from spinefm.pipeline.core.types import Instance


def test_seeds_are_the_consecutive_run_with_the_best_mean_score():
    record = phantom("ap_thoracolumbar")
    n = len(record.vertebrae)
    scores = [0.7] * n
    scores[10:13] = [0.95, 0.9, 0.95]
    scores[3] = 0.99  # one high score alone does not win
    order = np.random.default_rng(0).permutation(n)
    result = oracle_loop(record, list(order), scores=[scores[i] for i in order]).run(record.image, view=record.view)
    assert [int(order[i]) for i in result.trace.seeds] == [10, 11, 12]
    assert [order[i] for i in result.trace.order] == list(range(n))
    assert result.levels == record.levels
    assert result.trace.dropped["duplicate"] == 0


def test_order_along_spine_and_best_run():
    points = np.array([[50.0, 30.0], [10.0, 0.0], [90.0, 60.0], [30.0, 15.0]])
    assert order_along_spine(points).tolist() == [1, 3, 0, 2]
    assert order_along_spine(np.array([[0.0, 5.0], [3.0, 5.0]])).tolist() == [0, 1]  # horizontal: left to right
    assert order_along_spine(np.array([[0.0, 30.0], [1.0, 0.0], [0.0, 10.0]])).tolist() == [1, 2, 0]
    assert best_run(np.array([0.9, 0.1, 0.8, 0.8, 0.8]), 3) == 2
    assert best_run(np.array([0.7, 0.8]), 3) == 0


def test_duplicates_keep_the_better_mask_one_to_one():
    def instance(x, score):
        mask = np.ones((10, 10), bool)
        return Instance(MaskCrop(mask.astype(np.float16), (x, 0)), mask, np.array([x + 4.5, 4.5]), score, "seed")

    instances = [instance(0, 0.8), instance(1, 0.95), instance(20, 0.7), instance(2, 0.9)]
    assert deduplicate(instances, 0.5) == [1, 2]
    assert deduplicate(instances, 0.99) == [0, 1, 2, 3]


def test_final_masks_are_compact_crops_with_smoothing_and_threshold():
    record = phantom("ap_thoracolumbar")
    height, width = record.image_shape()
    loop = oracle_loop(record, middle(record), {"smooth_sigma": 1.0, "opening_radius": 1, "final_threshold": 0.5})
    result = loop.run(record.image, view=record.view)
    assert result.levels == record.levels
    for instance in result.instances:
        assert instance.probability.values.dtype == np.float16 and instance.mask.dtype == bool
        assert instance.mask.shape == instance.probability.shape
        assert instance.mask.size < height * width / 4
        x0, y0 = instance.offset
        assert 0 <= x0 and 0 <= y0 and x0 + instance.mask.shape[1] <= width and y0 + instance.mask.shape[0] <= height
        vertebra = instance.to_vertebra()
        assert vertebra.level == instance.level and vertebra.area() == instance.mask.sum()


def test_final_mask_by_hand():
    values = np.zeros((8, 10), np.float32)
    values[2:4, 3:6] = [[0.95, 0.95, 0.5], [0.95, 0.97, 0.92]]  # mask: five pixels above 0.9
    values[6, 9] = 0.2  # above the crop floor: kept in the crop, not in the mask
    final = final_mask(MaskCrop(values, (100, 50)), threshold=0.9, crop_floor=0.1)
    assert final.probability.offset == (103, 52) and final.mask.shape == (5, 7)
    assert final.mask.sum() == 5 and not final.mask[4, 6] and final.probability.values[4, 6] == np.float16(0.2)
    weights = np.array([[0.95, 0.95, 0], [0.95, 0.97, 0.92]])
    yy, xx = np.indices(weights.shape)
    centroid = [(weights * xx).sum() / weights.sum() + 103, (weights * yy).sum() / weights.sum() + 52]
    assert np.allclose(final.centroid, centroid) and final.score == pytest.approx(4.74 / 5, rel=1e-6)
    assert final_mask(MaskCrop(values, (0, 0)), threshold=0.99) is None
    assert final_mask(MaskCrop(values, (0, 0)), threshold=0.9, opening_radius=1) is None  # too thin to open


def test_paste_and_crop_are_exact_inverses():
    rng = np.random.default_rng(0)
    height, width = 40, 30
    for offset in [(5, 7), (-4, -3), (25, 35), (-10, 20)]:
        crop = rng.random((12, 9)).astype(np.float32)
        full = paste(crop, offset, height, width)
        back = crop_patch(np.pad(full, 20), (offset[0] + 20, offset[1] + 20), 12)[:, :9]
        inside = paste(np.ones_like(crop), offset, height, width)
        inside = crop_patch(np.pad(inside, 20), (offset[0] + 20, offset[1] + 20), 12)[:, :9] > 0
        assert np.array_equal(back[inside], crop[inside]) and not back[~inside].any()
        assert full.sum() == pytest.approx(crop[inside].sum(), rel=1e-6)


def test_resample_is_opencvs_linear_resize_on_any_window():
    source = np.random.default_rng(1).random((16, 12)).astype(np.float32)
    for size in [(40, 30), (7, 5)]:
        expected = cv2.resize(source, size[::-1], interpolation=cv2.INTER_LINEAR)
        scale = (source.shape[1] / size[1], source.shape[0] / size[0])
        assert np.allclose(resample(source, scale, (0, 0), size), expected, atol=1e-5)
        window = resample(source, scale, (2, 3), (size[0] - 4, size[1] - 3))
        assert np.allclose(window, expected[3 : size[0] - 1, 2 : size[1] - 1], atol=1e-5)


def test_low_res_pixels_map_back_to_their_original_centres():
    """Low-res pixel u of a side-px patch at x0 covers x0 + (u + 0.5) * side / L - 0.5: a ramp sampled
    there comes back exactly on the original pixels between the first and last low-res centres."""
    side, low = 50, 16
    centres = (np.arange(low) + 0.5) * side / low - 0.5
    ramp = np.add.outer(2.0 * centres, 3.0 * centres)  # value 2 y + 3 x
    back = resample(ramp, (low / side, low / side), (0, 0), (side, side))
    yy, xx = np.indices((side, side))
    inner = (xx >= centres[0]) & (xx <= centres[-1]) & (yy >= centres[0]) & (yy <= centres[-1])
    assert np.allclose(back[inner], (2 * yy + 3 * xx)[inner], atol=1e-4)
