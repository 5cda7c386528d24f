"""CsxaReader on tiny CSXA folders (SpineFM's prepared layout and the native release)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.native_formats import CERVICAL, SIZE, kinds, read_all, write_csxa_native, write_csxa_prepared
from spinefm.data.image_io import looks_inverted
from spinefm.data.readers.csxa import CsxaReader, parse_point_label, parse_spacing

NATIVE_IDS = ("0000001", "0000002", "0000003", "0000004", "0000005", "0000006")


def border_median(pixels):
    return float(np.median(np.concatenate([pixels[:5].ravel(), pixels[-5:].ravel()])))


# --- prepared layout ----------------------------------------------------------------------------
def test_prepared_splits_view_levels_and_centroids(tmp_path):
    splits = {"train": ["0000001", "0000002"], "val": ["0000003", "0000004"], "test": ["0000005"]}
    written = write_csxa_prepared(tmp_path, splits=splits)
    for split, listed in splits.items():
        reader = CsxaReader(tmp_path, split=split)
        assert reader.layout == "prepared"
        assert sorted(reader.ids) == sorted(listed)
    records, errors = read_all(CsxaReader(tmp_path, split="all"))
    assert not errors and sorted(records) == sorted(written.ids)
    for image_id, record in records.items():
        assert record.view == "lateral_cervical"
        assert record.levels == list(CERVICAL) and record.problems == []
        assert record.auto_invert and record.meta["source"] == "csxa"
        for vertebra in record.vertebrae:
            assert vertebra.mask is not None and vertebra.exact
            np.testing.assert_allclose(vertebra.centroid(), written.centroid(image_id, vertebra.level), atol=0.5)


def test_prepared_defects_are_reported_and_the_rest_is_read(tmp_path):
    ids = ("0000001", "0000002", "0000003", "0000004")
    write_csxa_prepared(
        tmp_path,
        ids=ids,
        splits={"train": list(ids)},
        missing_images=("0000002",),
        unreadable_masks={"0000003": ["C4"]},
        empty_masks={"0000004": ["C7"]},
    )
    records, errors = read_all(CsxaReader(tmp_path, split="train"))
    assert set(errors) == {"0000002"} and errors["0000002"].problem.kind == "missing_image"
    assert records["0000001"].levels == list(CERVICAL)
    bad = records["0000003"]
    assert kinds(bad, "C4") == ["unreadable_annotation"] and bad.problems[0].image_id == "0000003"
    assert bad.levels == ["C2", "C3", "C5", "C6", "C7"]
    assert kinds(records["0000004"], "C7") == ["empty_outline"] and records["0000004"].levels == list(CERVICAL[:-1])


def test_prepared_inverted_film_comes_back_dark(tmp_path):
    written = write_csxa_prepared(tmp_path, ids=("0000001", "0000002", "0000003"), inverted=("0000002",))
    reader = CsxaReader(tmp_path, split="all")
    image = reader[reader.ids.index("0000002")].load_image()
    original = written.images["0000002"]
    assert not looks_inverted(image) and border_median(image) < 40
    assert np.abs(image.astype(int) - original.astype(int)).mean() < 3  # JPEG round trip
    kept = CsxaReader(tmp_path, split="all", fix_inverted=False)
    assert border_median(kept[kept.ids.index("0000002")].load_image()) > 200


# --- native layout ------------------------------------------------------------------------------
def test_native_levels_corners_and_c2_flag(tmp_path):
    written = write_csxa_native(tmp_path, ids=NATIVE_IDS)
    reader = CsxaReader(tmp_path, split="all")
    assert reader.layout == "native"
    records, errors = read_all(reader)
    assert not errors and sorted(records) == sorted(NATIVE_IDS)
    for image_id, record in records.items():
        assert record.levels == list(CERVICAL) and record.problems == []
        assert record.view == "lateral_cervical" and record.auto_invert
        assert record.image_path.suffix == ".png" and record.meta["image_size"] == SIZE
        for vertebra in record.vertebrae:
            assert vertebra.exact == (vertebra.level != "C2")
            np.testing.assert_allclose(vertebra.centroid(), written.centroid(image_id, vertebra.level), atol=0.5)
            if vertebra.level != "C2":
                np.testing.assert_array_equal(vertebra.polygon, written.outlines[image_id][vertebra.level])


def test_native_without_split_files_uses_seeded_fractions(tmp_path):
    write_csxa_native(tmp_path, ids=NATIVE_IDS)
    fractions = {"train": 0.5, "val": 0.25, "test": 0.25}
    by_split = {
        s: CsxaReader(tmp_path, split=s, split_fractions=fractions, split_seed=1).ids for s in ("train", "val", "test")
    }
    assert sorted(sum(by_split.values(), [])) == sorted(NATIVE_IDS)
    assert all(by_split.values()) and len(by_split["train"]) >= 3
    assert CsxaReader(tmp_path, split="train", split_fractions=fractions, split_seed=1).ids == by_split["train"]


def test_c2_top_corners_mirror_the_bottom_ones_through_the_centroid(tmp_path):
    points = {"C2 centroid": (50.0, 20.0), "C2 bottom left": (40.0, 28.0), "C2 bottom right": (62.0, 30.0)}
    write_csxa_native(tmp_path, ids=("0000001",), override_points={"0000001": points})
    c2 = CsxaReader(tmp_path, split="all")[0].vertebrae[0]
    assert c2.level == "C2" and c2.exact is False
    # top left = 2 * centroid - bottom right, top right = 2 * centroid - bottom left; TL, TR, BR, BL
    np.testing.assert_allclose(c2.polygon, [[38, 10], [60, 12], [62, 30], [40, 28]])
    np.testing.assert_allclose(c2.centroid(), [50, 20], atol=1e-9)


def test_c2_skip_leaves_c2_out(tmp_path):
    write_csxa_native(tmp_path, ids=("0000001", "0000002"))
    records, _ = read_all(CsxaReader(tmp_path, split="all", c2_outline="skip"))
    for record in records.values():
        assert record.levels == list(CERVICAL[1:]) and record.problems == []
        assert all(v.exact for v in record.vertebrae)


@pytest.mark.parametrize("style", ["underscore", "dash", "upper", "spaced"])
def test_label_spellings_read_like_the_plain_ones(tmp_path, style):
    plain = write_csxa_native(tmp_path / "plain", ids=("0000001",))
    write_csxa_native(tmp_path / style, ids=("0000001",), label_style=style)
    expected = CsxaReader(plain.root, split="all")[0]
    record = CsxaReader(tmp_path / style, split="all")[0]
    assert record.levels == expected.levels and record.problems == []
    for a, b in zip(record.vertebrae, expected.vertebrae):
        np.testing.assert_array_equal(a.polygon, b.polygon)


@pytest.mark.parametrize(
    "label, parsed",
    [
        ("C3 top left", ("C3", "top left")),
        ("c3_Top_Left", ("C3", "top left")),
        ("C3-top-right", ("C3", "top right")),
        ("  C5   bottom   right ", ("C5", "bottom right")),
        ("C2 centroid", ("C2", "centroid")),
        ("C2_center", ("C2", "centroid")),
        ("C4 left bottom", ("C4", "bottom left")),
        ("C4 middle", None),
        ("vertebra", None),
    ],
)
def test_parse_point_label(label, parsed):
    assert parse_point_label(label) == parsed


def test_native_defects_are_reported_and_the_rest_is_read(tmp_path):
    written = write_csxa_native(
        tmp_path,
        ids=NATIVE_IDS,
        missing_points={"0000002": ["C4 top left"], "0000003": ["C2 centroid"]},
        malformed_json=("0000004",),
        missing_json=("0000005",),
        missing_images=("0000006",),
        extra_shapes={
            "0000001": [
                {"label": "C9 top left", "points": [[1, 1]], "shape_type": "point"},
                {"label": "ruler", "points": [[1, 1], [5, 5]], "shape_type": "line"},
            ]
        },
    )
    records, errors = read_all(CsxaReader(tmp_path, split="all"))
    assert {k: e.problem.kind for k, e in errors.items()} == {
        "0000004": "unreadable_annotation",
        "0000005": "missing_annotation",
        "0000006": "missing_image",
    }
    assert all(e.problem.image_id == k for k, e in errors.items())
    assert errors["0000004"].problem.path.endswith("0000004.json")

    extra = records["0000001"]
    assert extra.levels == list(CERVICAL)
    assert kinds(extra) == ["unknown_level", "unreadable_annotation"]
    assert any("ruler" in p.message for p in extra.problems)

    corner = records["0000002"]
    problem = next(p for p in corner.problems if p.level == "C4")
    assert (problem.kind, problem.image_id) == ("degenerate_outline", "0000002") and "top left" in problem.message
    assert corner.levels == written.expected_levels["0000002"] == ["C2", "C3", "C5", "C6", "C7"]
    assert kinds(corner) == ["degenerate_outline", "level_gap"]

    no_centroid = records["0000003"]
    assert kinds(no_centroid) == ["degenerate_outline"] and no_centroid.problems[0].level == "C2"
    assert no_centroid.levels == list(CERVICAL[1:])
    assert kinds(CsxaReader(tmp_path, split="all", c2_outline="skip")[2]) == []  # skip: nothing to complain about


def test_native_inverted_film_comes_back_as_drawn(tmp_path):
    written = write_csxa_native(tmp_path, ids=("0000001", "0000002"), inverted=("0000002",))
    records, _ = read_all(CsxaReader(tmp_path, split="all"))
    for image_id, record in records.items():
        np.testing.assert_array_equal(record.load_image(), written.images[image_id])  # PNG: exact
    assert border_median(records["0000002"].load_image()) < 40
    raw, _ = read_all(CsxaReader(tmp_path, split="all", fix_inverted=False))
    np.testing.assert_array_equal(raw["0000002"].load_image(), 255 - written.images["0000002"])


def test_spacing_from_json_and_metadata_csv(tmp_path):
    ids = ("0000001", "0000002", "0000003", "0000004")
    write_csxa_native(
        tmp_path,
        ids=ids,
        json_spacing={"0000001": 0.15, "0000002": [0.1, 0.12]},
        metadata={"0000001": 0.9, "0000003": 0.2},  # the JSON value wins for 0000001
    )
    records, _ = read_all(CsxaReader(tmp_path, split="all"))
    assert records["0000001"].spacing_mm == (0.15, 0.15)
    assert records["0000002"].spacing_mm == (0.1, 0.12)
    assert records["0000003"].spacing_mm == (0.2, 0.2)
    assert records["0000004"].spacing_mm is None
    records["0000004"].load_image()
    assert records["0000004"].spacing_mm is None  # a PNG carries none


@pytest.mark.parametrize("key", ["pixel_spacing", "PixelSpacing", "spacing"])
def test_spacing_json_keys(tmp_path, key):
    write_csxa_native(tmp_path, ids=("0000001",), json_spacing={"0000001": "0.1\\0.11"}, json_spacing_key=key)
    assert CsxaReader(tmp_path, split="all")[0].spacing_mm == (0.1, 0.11)


@pytest.mark.parametrize("id_column", ["filename", "image"])
def test_spacing_metadata_by_file_name(tmp_path, id_column):
    write_csxa_native(
        tmp_path,
        ids=("0000001", "0000002"),
        metadata={"0000002": "[0.2, 0.25]"},
        metadata_columns=(id_column, "PixelSpacing"),
    )
    records, _ = read_all(CsxaReader(tmp_path, split="all"))
    assert records["0000002"].spacing_mm == (0.2, 0.25) and records["0000001"].spacing_mm is None


def test_parse_spacing():
    assert parse_spacing(0.2) == (0.2, 0.2)
    assert parse_spacing([0.1, 0.3]) == (0.1, 0.3)
    assert parse_spacing("0.1\\0.3") == (0.1, 0.3)
    assert parse_spacing("[0.5]") == (0.5, 0.5)
    for bad in ("", "n/a", -1, 0, [0.1, 0.2, 0.3], None, True, {"x": 1}):
        assert parse_spacing(bad) is None


def test_layout_choice_and_arguments(tmp_path):
    write_csxa_native(tmp_path / "native", ids=("0000001",))
    write_csxa_prepared(tmp_path / "prepared", ids=("0000001", "0000002", "0000003"))
    assert CsxaReader(tmp_path / "native", split="all", layout="native").layout == "native"
    assert CsxaReader(tmp_path / "prepared", split="all", layout="prepared").layout == "prepared"
    with pytest.raises(FileNotFoundError):
        CsxaReader(tmp_path / "native", split="all", layout="prepared")
    with pytest.raises(FileNotFoundError):
        CsxaReader(tmp_path, split="all")  # neither layout at the root
    with pytest.raises(ValueError):
        CsxaReader(tmp_path / "native", layout="coco")
    with pytest.raises(ValueError):
        CsxaReader(tmp_path / "native", c2_outline="guess")
