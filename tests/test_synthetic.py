"""Synthetic phantoms: determinism, documented levels per view, exact and separable outlines, visibility."""

import cv2
import numpy as np
import pytest

from spinefm.data.levels import level_index, level_range
from spinefm.data.record import tidy_vertebrae
from spinefm.synthetic import PhantomConfig, generate_phantom

VIEW_RANGE = {"lateral_cervical": ("C2", "T1"), "lateral_lumbar": ("T12", "S1"), "ap_thoracolumbar": ("T1", "L5")}
ASPECT = {"lateral_cervical": (0.8, 0.9), "lateral_lumbar": (0.75, 0.85), "ap_thoracolumbar": (0.35, 0.5)}
SEEDS = range(30)


@pytest.fixture(scope="module")
def batch():
    return [generate_phantom(seed) for seed in SEEDS]


def _masks(record):
    height, width = record.image.shape
    return [v.to_mask(height, width) for v in record.vertebrae]


def test_same_seed_gives_identical_phantom():
    a, b = generate_phantom(7), generate_phantom(7)
    assert a.id == b.id == "synthetic_000007"
    assert a.view == b.view and a.levels == b.levels and a.spacing_mm == b.spacing_mm
    np.testing.assert_array_equal(a.image, b.image)
    for va, vb in zip(a.vertebrae, b.vertebrae):
        np.testing.assert_array_equal(va.polygon, vb.polygon)


def test_different_seeds_give_different_phantoms():
    a, b = generate_phantom(1, view="lateral_lumbar"), generate_phantom(2, view="lateral_lumbar")
    assert a.image.shape != b.image.shape or not np.array_equal(a.image, b.image)
    assert not np.allclose(a.vertebrae[0].polygon.mean(0), b.vertebrae[0].polygon.mean(0))


def test_record_fields(batch):
    assert {r.view for r in batch} == set(VIEW_RANGE)  # view=None draws all three
    for seed, record in zip(SEEDS, batch):
        assert record.image.dtype == np.uint8 and record.image.ndim == 2
        assert record.image_path is None and record.load_image() is record.image
        assert record.meta["seed"] == seed and record.id == f"synthetic_{seed:06d}"
        s_row, s_col = record.spacing_mm
        assert s_row == s_col and 0.2 < s_row < 3.0
        assert record.image.std() > 10  # not blank


@pytest.mark.parametrize("view", sorted(VIEW_RANGE))
def test_shape_and_aspect_match_view(view):
    low, high = ASPECT[view]
    for seed in range(5):
        record = generate_phantom(seed, PhantomConfig(image_size=256), view=view)
        height, width = record.image.shape
        assert height == 256 and record.view == view
        assert low - 0.01 <= width / height <= high + 0.01


def test_levels_are_a_contiguous_run_in_the_view_range(batch):
    for record in batch:
        first, last = VIEW_RANGE[record.view]
        assert len(record.levels) >= 3
        assert record.levels == level_range(record.levels[0], record.levels[-1])
        assert level_index(first) <= level_index(record.levels[0])
        assert level_index(record.levels[-1]) <= level_index(last)
        # top to bottom in the image too
        centres_y = [v.centroid()[1] for v in record.vertebrae]
        assert centres_y == sorted(centres_y)


def test_views_without_cutoff_give_the_documented_levels():
    config = PhantomConfig(cutoff_probability=0.0)
    cervical = set()
    for seed in range(8):
        assert generate_phantom(seed, config, view="ap_thoracolumbar").levels == level_range("T1", "L5")
        assert generate_phantom(seed, config, view="lateral_lumbar").levels == ["T12", *level_range("L1", "L5"), "S1"]
        cervical.add(tuple(generate_phantom(seed, config, view="lateral_cervical").levels))
    assert cervical == {tuple(level_range("C2", "C7")), tuple(level_range("C2", "T1"))}  # T1 in some images


def test_context_levels_are_rendered_but_not_annotated():
    config = PhantomConfig(cutoff_probability=0.0)
    ap = generate_phantom(3, config, view="ap_thoracolumbar")
    assert {"C7", "S1"} <= set(ap.meta["unannotated_levels"])
    assert "C1" in generate_phantom(3, config, view="lateral_cervical").meta["unannotated_levels"]


def test_polygons_lie_inside_the_image(batch):
    for record in batch:
        height, width = record.image.shape
        for v in record.vertebrae:
            assert v.polygon.shape[1] == 2 and 16 <= len(v.polygon) <= 40
            assert (v.polygon >= 0).all()
            assert (v.polygon[:, 0] <= width - 1).all() and (v.polygon[:, 1] <= height - 1).all()


def test_tidy_vertebrae_keeps_everything(batch):
    for record in batch:
        kept, problems = tidy_vertebrae(record.id, record.vertebrae)
        assert problems == []
        assert [v.level for v in kept] == record.levels


def test_neighbouring_masks_do_not_overlap(batch):
    for record in batch:
        masks = _masks(record)
        for upper, lower in zip(masks, masks[1:]):
            assert (upper & lower).sum() < 0.01 * min(upper.sum(), lower.sum())


def test_vertebrae_are_brighter_than_their_surroundings(batch):
    kernel = np.ones((7, 7), np.uint8)
    for record in batch:
        masks = _masks(record)
        union = np.any(masks, axis=0)
        for vertebra, mask in zip(record.vertebrae, masks):
            band = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool) & ~union
            assert record.image[mask].mean() > record.image[band].mean() + 3, (record.id, vertebra.level)


def test_implants_follow_their_probability():
    for seed in range(6):
        record = generate_phantom(seed, PhantomConfig(implant_probability=1.0))
        assert record.meta["implant"]
        assert set(record.meta["implant_levels"]) <= set(level_range(*VIEW_RANGE[record.view]))
        assert (record.image >= 250).sum() > 20  # saturating metal
        none = generate_phantom(seed, PhantomConfig(implant_probability=0.0))
        assert not none.meta["implant"] and none.meta["implant_levels"] == []


def test_cutoffs_follow_their_probability():
    for seed in range(12):
        record = generate_phantom(seed, PhantomConfig(cutoff_probability=1.0))
        height = record.image.shape[0]
        side = record.meta["cut_off"]
        assert side in ("top", "bottom")
        assert len(record.levels) >= 3 and record.levels == level_range(record.levels[0], record.levels[-1])
        # the spine runs out of the image: its end vertebra was dropped or is clipped at the border
        end = record.vertebrae[0 if side == "top" else -1].polygon[:, 1]
        assert record.meta["dropped_levels"] or (end.min() <= 0.5 if side == "top" else end.max() >= height - 1.5)

        whole = generate_phantom(seed, PhantomConfig(cutoff_probability=0.0))
        assert whole.meta["cut_off"] is None and whole.meta["dropped_levels"] == []
        h, w = whole.image.shape
        for v in whole.vertebrae:  # nothing clipped
            assert v.polygon.min() > 0.5 and (v.polygon[:, 0] < w - 1.5).all() and (v.polygon[:, 1] < h - 1.5).all()


def test_config_accepts_hydra_lists_and_rejects_bad_values():
    config = PhantomConfig(views=["lateral_lumbar"], cobb_range=[0, 10])
    assert config.views == ("lateral_lumbar",) and config.cobb_range == (0, 10)
    assert generate_phantom(0, config).view == "lateral_lumbar"
    with pytest.raises(ValueError):
        PhantomConfig(views=("sagittal",))
    with pytest.raises(ValueError):
        PhantomConfig(noise_range=(0.1, 0.0))
    with pytest.raises(ValueError):
        PhantomConfig(implant_probability=1.5)
    with pytest.raises(ValueError):
        generate_phantom(0, view="oblique")
