"""NhanesReader on tiny NHANES-layout folders written by native_formats."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.native_formats import CERVICAL, LUMBAR, SIZE, kinds, read_all, write_nhanes, write_split_files
from spinefm.data.problems import DataError
from spinefm.data.readers.nhanes import NhanesReader


def test_split_sizes_follow_the_split_files(tmp_path):
    splits = {"train": ["C00001", "L00003", "C00004"], "val": ["L00005", "C00006"], "test": ["C00002"]}
    write_nhanes(tmp_path, splits=splits)
    for split, listed in splits.items():
        reader = NhanesReader(tmp_path, split=split)
        assert len(reader) == len(listed)
        assert sorted(reader.ids) == sorted(listed)
    assert len(NhanesReader(tmp_path, split="all")) == 6


def test_view_from_the_film_letter(tmp_path):
    write_nhanes(
        tmp_path,
        ids=("C00001", "L00002", "X00003"),
        splits={"train": ["C00001", "L00002", "X00003"]},
        levels={"X00003": CERVICAL},
    )
    records, errors = read_all(NhanesReader(tmp_path, split="train"))
    assert not errors
    assert records["C00001"].view == "lateral_cervical"
    assert records["L00002"].view == "lateral_lumbar"
    assert records["X00003"].view is None


def test_levels_top_to_bottom_and_centroids_as_drawn(tmp_path):
    written = write_nhanes(tmp_path, splits=None)
    records, errors = read_all(NhanesReader(tmp_path, split="all"))
    assert not errors and sorted(records) == sorted(written.ids)
    for image_id, record in records.items():
        expected = list(LUMBAR if image_id.startswith("L") else CERVICAL)
        assert record.levels == expected, image_id
        assert record.problems == []
        assert record.meta["source"] == "nhanes"
        assert record.image_path.name == f"{image_id}.jpg"
        for vertebra in record.vertebrae:
            assert vertebra.mask is not None and vertebra.exact
            assert vertebra.mask.shape[0] < SIZE[0] and vertebra.mask.shape[1] < SIZE[1]  # stored cropped
            np.testing.assert_allclose(vertebra.centroid(), written.centroid(image_id, vertebra.level), atol=0.5)
        assert record.load_image().shape == SIZE


def test_images_in_no_split_file_are_left_out(tmp_path):
    write_nhanes(tmp_path, splits={"train": ["C00001", "C00002"], "val": ["L00003"], "test": ["C00004"]})
    listed = {"C00001", "C00002", "L00003", "C00004"}
    seen = set()
    for split in ("train", "val", "test"):
        reader = NhanesReader(tmp_path, split=split)
        seen.update(reader.ids)
        assert reader.unlisted_ids == ["C00006", "L00005"]
    assert seen == listed
    assert set(NhanesReader(tmp_path, split="all").ids) == listed


def test_without_split_folder_seeded_fractions_cover_every_image_once(tmp_path):
    ids = [f"C{n:05d}" for n in range(1, 11)] + ["L00001", "L00002"]
    write_nhanes(tmp_path, ids=ids, splits=None)
    assert not (tmp_path / "data_split").exists()
    fractions = {"train": 0.6, "val": 0.2, "test": 0.2}
    by_split = {
        s: NhanesReader(tmp_path, split=s, split_fractions=fractions, split_seed=3).ids
        for s in ("train", "val", "test")
    }
    assert sorted(sum(by_split.values(), [])) == sorted(ids)
    assert all(by_split.values())
    again = NhanesReader(tmp_path, split="train", split_fractions=fractions, split_seed=3).ids
    assert again == by_split["train"]
    split_of = {image_id: s for s, listed in by_split.items() for image_id in listed}
    # films sharing a number share a split
    assert split_of["C00001"] == split_of["L00001"] and split_of["C00002"] == split_of["L00002"]


def test_split_file_lines_are_read_leniently(tmp_path):
    write_nhanes(tmp_path, splits=None)
    write_split_files(tmp_path, {"train": ["C00001.jpg", "C00002  # comment", "", "L00003_extra"], "val": ["C00004\r"]})
    assert NhanesReader(tmp_path, split="train").ids == ["C00001", "C00002", "L00003"]
    assert NhanesReader(tmp_path, split="val").ids == ["C00004"]
    assert NhanesReader(tmp_path, split="test").ids == []


def test_other_image_formats_are_found(tmp_path):
    write_nhanes(tmp_path, ids=("C00001", "L00002"), splits={"train": ["C00001", "L00002"]}, image_suffix=".png")
    records, errors = read_all(NhanesReader(tmp_path))
    assert not errors
    assert {r.image_path.suffix for r in records.values()} == {".png"}
    assert records["C00001"].load_image().shape == SIZE


def test_every_planted_defect_is_reported_and_the_rest_is_read(tmp_path):
    ids = ("C00001", "C00002", "L00003", "C00004", "L00005", "C00006", "C00007", "C00008")
    written = write_nhanes(
        tmp_path,
        ids=ids,
        splits={"train": [*ids, "C00009"]},  # C00009: listed, never written
        missing_images=("C00002",),
        unreadable_masks={"L00003": ["L2"]},
        empty_masks={"C00004": ["C5"]},
        omit_levels={"L00005": ["L3"]},
        wrong_shape_masks={"C00006": ["C4"]},
        unknown_level_files={"C00007": ["X9"]},
        no_masks=("C00008",),
    )
    reader = NhanesReader(tmp_path, split="train")
    assert len(reader) == 9
    records, errors = read_all(reader)

    assert set(errors) == {"C00002", "C00009"}
    for image_id in ("C00002", "C00009"):
        assert errors[image_id].problem.kind == "missing_image"
        assert errors[image_id].problem.image_id == image_id

    assert records["C00001"].problems == [] and records["C00001"].levels == list(CERVICAL)

    unreadable = records["L00003"]
    assert kinds(unreadable) == ["level_gap", "unreadable_annotation"]
    bad = next(p for p in unreadable.problems if p.kind == "unreadable_annotation")
    assert (bad.image_id, bad.level) == ("L00003", "L2") and bad.path.endswith("L00003_L2.npy")
    assert unreadable.levels == written.expected_levels["L00003"] == ["T12", "L1", "L3", "L4", "L5", "S1"]

    empty = records["C00004"]
    assert kinds(empty, "C5") == ["empty_outline"] and "C5" not in empty.levels
    assert all(p.image_id == "C00004" for p in empty.problems)

    gap = records["L00005"]
    assert kinds(gap) == ["level_gap"] and gap.problems[0].level == "L4"
    assert gap.levels == ["T12", "L1", "L2", "L4", "L5", "S1"]

    shape = records["C00006"]
    assert kinds(shape, "C4") == ["unreadable_annotation"] and "C4" not in shape.levels
    assert "shape" in next(p for p in shape.problems if p.level == "C4").message

    unknown = records["C00007"]
    assert kinds(unknown) == ["unknown_level"] and "X9" in unknown.problems[0].message
    assert unknown.levels == list(CERVICAL)

    bare = records["C00008"]
    assert bare.vertebrae == [] and "no_vertebrae" in kinds(bare) and "missing_annotation" in kinds(bare)

    for image_id, record in records.items():  # every defect-free vertebra still came back, where it was drawn
        assert record.levels == written.expected_levels[image_id]
        for vertebra in record.vertebrae:
            np.testing.assert_allclose(vertebra.centroid(), written.centroid(image_id, vertebra.level), atol=0.5)


def test_wrong_shape_found_by_majority_when_the_header_cannot_tell(tmp_path):
    written = write_nhanes(tmp_path, ids=("C00001",), splits=None, wrong_shape_masks={"C00001": ["C3"]})
    (tmp_path / "imgs" / "C00001.jpg").write_bytes(b"no header here")  # PIL cannot size it: masks vote
    record = NhanesReader(tmp_path, split="all")[0]
    assert kinds(record, "C3") == ["unreadable_annotation"]
    assert record.levels == written.expected_levels["C00001"]
    with pytest.raises(DataError) as caught:
        record.load_image()
    assert caught.value.problem.kind == "unreadable_image"


def test_a_root_without_the_layout_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        NhanesReader(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError):
        NhanesReader(tmp_path)


def test_split_folder_without_split_files_falls_back_and_first_listing_wins(tmp_path):
    write_nhanes(tmp_path, splits=None)
    (tmp_path / "data_split").mkdir()
    assert sum(len(NhanesReader(tmp_path, split=s)) for s in ("train", "val", "test")) == 6  # seeded fractions
    write_split_files(tmp_path, {"train": ["C00001"], "test": ["C00001", "C00002"]})
    assert NhanesReader(tmp_path, split="train").ids == ["C00001"]
    assert NhanesReader(tmp_path, split="test").ids == ["C00002"]
