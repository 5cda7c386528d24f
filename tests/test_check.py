import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from hydra import compose, initialize_config_dir
from pycocotools import mask as mask_utils

from helpers.aasce_files import write_aasce
from helpers.native_formats import write_csxa_native, write_nhanes
from spinefm.data.check import check_dataset, format_summary

REPO = Path(__file__).resolve().parents[1]
CONFIGS = str(REPO / "configs")


def dataset_cfg(name, **overrides):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        args = [f"dataset={name}"] + [f"dataset.{k}={v}" for k, v in overrides.items()]
        return compose(config_name="check", overrides=args).dataset


def quad(x, y, w=20, h=10):
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def write_defective_coco(root):
    """Four images: one clean, one with every outline defect, one missing, one corrupt."""
    (root / "images").mkdir(parents=True)
    for name in ("clean.png", "defects.png"):
        cv2.imwrite(str(root / "images" / name), np.full((100, 60), 30, np.uint8))
    (root / "images" / "corrupt.png").write_bytes(b"\x89PNG broken")
    images = [
        {"id": i + 1, "file_name": n, "height": 100, "width": 60}
        for i, n in enumerate(["clean.png", "defects.png", "missing.png", "corrupt.png"])
    ]
    empty_rle = mask_utils.encode(np.zeros((100, 60), np.uint8, order="F"))
    empty_rle["counts"] = empty_rle["counts"].decode()
    levels = {"L1": 1, "L2": 2, "L3": 3, "L4": 4, "L5": 5}
    annotations = [
        (1, "L1", quad(10, 10)),
        (1, "L2", quad(10, 25)),
        (1, "L3", quad(10, 40)),
        (2, "L1", quad(10, 10)),
        (2, "L1", quad(10, 60)),  # duplicate level
        (2, "L2", [[5, 30, 5.5, 30, 5, 30.5]]),  # degenerate
        (2, "L3", empty_rle),  # empty
        (2, "L5", quad(10, 80)),  # gap: L2..L4 missing once the bad ones are dropped
        (3, "L1", quad(10, 10)),
        (4, "L1", quad(10, 10)),
    ]
    payload = {
        "images": images,
        "annotations": [
            {"id": i + 1, "image_id": img, "category_id": levels[lv], "segmentation": seg, "iscrowd": 0}
            for i, (img, lv, seg) in enumerate(annotations)
        ],
        "categories": [{"id": v, "name": k} for k, v in levels.items()],
    }
    (root / "annotations.json").write_text(json.dumps(payload))


def test_check_counts_and_names_every_planted_defect(tmp_path):
    write_defective_coco(tmp_path)
    cfg = dataset_cfg("coco", root=tmp_path, **{"reader.split_fractions": "{train:1.0,val:0.0,test:0.0}"})
    summary = check_dataset(cfg, progress=False)
    assert summary["images"] == 2 and summary["skipped"] == 2
    assert summary["levels"] == {"L1": 2, "L2": 1, "L3": 1, "L5": 1}
    assert summary["vertebrae"] == 5
    found = {(p["kind"], p["image_id"], p.get("level")) for p in summary["problems"]}
    assert found == {
        ("duplicate_level", "defects", "L1"),
        ("degenerate_outline", "defects", "L2"),
        ("empty_outline", "defects", "L3"),
        ("level_gap", "defects", "L5"),
        ("missing_image", "missing", None),
        ("unreadable_image", "corrupt", None),
    }
    assert all(p["split"] == "train" for p in summary["problems"])
    text = format_summary(summary)
    assert "missing_image" in text and "corrupt" in text


def test_check_aasce_native_layout(tmp_path):
    write_aasce(tmp_path, [f"c-{i} A AP" for i in range(10)])
    summary = check_dataset(dataset_cfg("aasce", root=tmp_path), progress=False)
    assert summary["images"] == 10 and summary["vertebrae"] == 170
    assert set(summary["levels"].values()) == {10} and len(summary["levels"]) == 17
    assert summary["problems"] == []
    assert sum(s["images"] for s in summary["splits"].values()) == 10


def run_check(*overrides, cwd):
    return subprocess.run(
        [sys.executable, "-m", "spinefm.data.check", *overrides, "paths.log_dir=" + str(cwd / "logs")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_command_writes_summary_and_exit_code_tells_usable(tmp_path):
    write_defective_coco(tmp_path / "data")
    done = run_check("dataset=coco", f"dataset.root={tmp_path / 'data'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary_path = next((tmp_path / "logs").rglob("dataset_summary.json"))
    summary = json.loads(summary_path.read_text())
    assert {"images", "vertebrae", "levels", "problems"} <= set(summary)
    assert summary["images"] == 2 and "defects" in done.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    failed = run_check("dataset=coco", f"dataset.root={empty}", cwd=tmp_path)
    assert failed.returncode == 1
    assert "no usable image" in failed.stderr and "Traceback" not in failed.stderr


def planted_kinds(summary):
    return {(p["kind"], p["image_id"], p.get("level")) for p in summary["problems"]}


def test_check_nhanes_counts_and_planted_defects(tmp_path):
    write_nhanes(
        tmp_path,
        missing_images=["C00002"],
        omit_levels={"C00001": ["C4"]},
        empty_masks={"L00003": ["L2"]},
        unreadable_masks={"C00004": ["C5"]},
    )
    summary = check_dataset(dataset_cfg("nhanes", root=tmp_path), progress=False)
    # 6 films: C00002 has no image; cervical C2..C7 (6 levels), lumbar T12..S1 (7 levels)
    assert summary["images"] == 5 and summary["skipped"] == 1
    assert summary["vertebrae"] == 3 * 6 + 2 * 7 - 3
    assert summary["levels"]["C4"] == 2 and summary["levels"]["L2"] == 1 and summary["levels"]["C5"] == 2
    assert planted_kinds(summary) >= {
        ("missing_image", "C00002", None),
        ("level_gap", "C00001", "C5"),
        ("empty_outline", "L00003", "L2"),
        ("level_gap", "L00003", "L3"),
        ("unreadable_annotation", "C00004", "C5"),
    }


def test_check_csxa_native_planted_defects(tmp_path):
    write_csxa_native(tmp_path, malformed_json=["0000002"], missing_points={"0000003": ["C4 top left"]})
    cfg = dataset_cfg("csxa", root=tmp_path, **{"reader.split_fractions": "{train:1.0,val:0.0,test:0.0}"})
    summary = check_dataset(cfg, progress=False)
    assert summary["images"] == 4 and summary["vertebrae"] == 4 * 6 - 1  # C2 approximated, C4 of one film lost
    found = planted_kinds(summary)
    assert ("unreadable_annotation", "0000002", None) in found
    assert ("degenerate_outline", "0000003", "C4") in found


def test_a_missing_dataset_folder_is_one_missing_root_problem(tmp_path):
    summary = check_dataset(dataset_cfg("aasce", root=tmp_path / "nowhere"), progress=False)
    assert [p["kind"] for p in summary["problems"]] == ["missing_root"] and summary["images"] == 0
    assert str(tmp_path / "nowhere") in summary["problems"][0]["message"]
