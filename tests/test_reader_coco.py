import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from spinefm.data.coco_writer import CocoWriter
from spinefm.data.readers.coco import CocoReader
from spinefm.data.record import ImageRecord, Vertebra

H, W = 100, 60


def quad(x, y, w=20, h=10):
    """A COCO polygon (pixel-edge coordinates) covering pixel centres x..x+w-1, y..y+h-1."""
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def write_coco(root, annotations, categories, images=None, name="annotations.json"):
    (root / "images").mkdir(exist_ok=True)
    images = images or [{"id": 1, "file_name": "a.png", "height": H, "width": W}]
    for image in images:
        cv2.imwrite(str(root / "images" / image["file_name"]), np.full((image["height"], image["width"]), 30, np.uint8))
    payload = {"images": images, "annotations": annotations, "categories": categories}
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(json.dumps(payload))


def ann(i, category, segmentation, image_id=1):
    return {"id": i, "image_id": image_id, "category_id": category, "segmentation": segmentation, "iscrowd": 0}


def test_level_categories_polygons_and_rle(tmp_path):
    full = np.zeros((H, W), np.uint8)
    full[40:50, 10:30] = 1
    rle = mask_utils.encode(np.asfortranarray(full))
    rle["counts"] = rle["counts"].decode()
    categories = [{"id": 1, "name": "L1"}, {"id": 2, "name": "l2"}, {"id": 3, "name": "L3"}]
    two_parts = [quad(10, 60, 20, 4), quad(10, 66, 20, 4)]
    write_coco(tmp_path, [ann(1, 2, rle), ann(2, 1, [quad(10, 20)]), ann(3, 3, two_parts)], categories)
    record = CocoReader(tmp_path, split="all")[0]
    assert record.levels == ["L1", "L2", "L3"]
    np.testing.assert_allclose(record.vertebrae[0].centroid(), [19.5, 24.5])  # edge -> centre convention
    assert record.vertebrae[0].to_mask(H, W).sum() == 200
    np.testing.assert_array_equal(record.vertebrae[1].to_mask(H, W), full.astype(bool))
    assert record.vertebrae[2].area() == 160 and record.problems == []


@pytest.mark.parametrize("anchor, expected", [("top", ["T12", "L1", "L2"]), ("bottom", ["L4", "L5", "S1"])])
def test_generic_category_gets_levels_by_order(tmp_path, anchor, expected):
    write_coco(
        tmp_path,
        [ann(1, 7, [quad(10, 70)]), ann(2, 7, [quad(10, 10)]), ann(3, 7, [quad(10, 40)])],
        [{"id": 7, "name": "vertebra"}],
    )
    record = CocoReader(tmp_path, split="all", first_level="T12", last_level="S1", level_anchor=anchor)[0]
    assert record.levels == expected
    assert [v.centroid()[1] for v in record.vertebrae] == [14.5, 44.5, 74.5]


def test_unknown_category_and_bad_segmentation_are_problems(tmp_path):
    categories = [{"id": 1, "name": "L1"}, {"id": 2, "name": "rib"}]
    write_coco(
        tmp_path, [ann(1, 1, [quad(10, 10)]), ann(2, 2, [quad(10, 40)]), ann(3, 1, {"size": [H, W]})], categories
    )
    record = CocoReader(tmp_path, split="all")[0]
    assert record.levels == ["L1"]
    assert sorted(p.kind for p in record.problems) == ["unknown_level", "unreadable_annotation"]


def test_per_split_files_and_missing_images(tmp_path):
    categories = [{"id": 1, "name": "C3"}]
    for split, names in {"train": ["a.png", "b.png"], "val": ["c.png"]}.items():
        images = [{"id": i + 1, "file_name": n, "height": H, "width": W} for i, n in enumerate(names)]
        write_coco(tmp_path, [ann(1, 1, [quad(5, 5)])], categories, images, name=f"{split}.json")
    (tmp_path / "images" / "b.png").unlink()
    files = {"train": "train.json", "val": "val.json"}
    train = CocoReader(tmp_path, split="train", annotations=files)
    assert train.ids == ["a", "b"] and CocoReader(tmp_path, split="val", annotations=files).ids == ["c"]
    with pytest.raises(Exception) as caught:
        train[1]
    assert caught.value.problem.kind == "missing_image" and caught.value.problem.image_id == "b"


def test_broken_json_names_the_file(tmp_path):
    (tmp_path / "annotations.json").write_text("{not json")
    with pytest.raises(ValueError, match="annotations.json"):
        CocoReader(tmp_path, split="all")


def test_writer_round_trip_keeps_outlines_view_and_spacing(tmp_path):
    mask = np.zeros((6, 9), bool)
    mask[1:5, 2:8] = True
    polygon = np.array([[10.25, 20.5], [30.0, 21.0], [29.5, 33.0], [11.0, 32.0]])
    record = ImageRecord(
        "r1",
        [Vertebra("C4", polygon=polygon, exact=False), Vertebra("C5", mask=mask, offset=(12, 50))],
        view="lateral_cervical",
        spacing_mm=(0.2, 0.2),
    )
    pixels = (np.arange(H * W).reshape(H, W) % 4000).astype(np.uint16)
    writer = CocoWriter(tmp_path, "annotations/train.json")
    writer.add(record, pixels)
    writer.write()
    back = CocoReader(tmp_path, split="all", annotations="annotations/train.json")[0]
    assert back.id == "r1" and back.levels == ["C4", "C5"]
    assert back.view == "lateral_cervical" and back.spacing_mm == (0.2, 0.2)
    np.testing.assert_allclose(back.vertebrae[0].polygon, polygon, atol=0.01)
    assert [v.exact for v in back.vertebrae] == [False, True]
    np.testing.assert_array_equal(back.vertebrae[1].to_mask(H, W), record.vertebrae[1].to_mask(H, W))
    np.testing.assert_array_equal(back.load_image(), pixels)


def test_auto_finds_one_json_or_the_exports_per_split_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"annotations/<split>\.json"):
        CocoReader(tmp_path, split="train")
    categories = [{"id": 1, "name": "C3"}]
    for split, names in {"train": ["a.png", "b.png"], "test": ["c.png"]}.items():
        images = [{"id": i + 1, "file_name": n, "height": H, "width": W} for i, n in enumerate(names)]
        write_coco(tmp_path, [ann(1, 1, [quad(5, 5)])], categories, images, name=f"annotations/{split}.json")
    assert CocoReader(tmp_path, split="train").ids == ["a", "b"] and CocoReader(tmp_path, split="test").ids == ["c"]
    assert CocoReader(tmp_path, split="val").ids == []
    write_coco(
        tmp_path, [ann(1, 1, [quad(5, 5)])], categories, [{"id": 1, "file_name": "d.png", "height": H, "width": W}]
    )
    assert CocoReader(tmp_path, split="all").ids == ["d"]  # annotations.json wins when present
