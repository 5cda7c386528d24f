"""infer.py on folders, list files and single films (tiny trained models), and its input/output helpers."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import spinefm
from helpers.dicom import write_dicom
from helpers.infer_runs import COMPONENTS, LOOP, infer
from spinefm.data.levels import LEVELS
from spinefm.io_utils import atomic_write_json
from spinefm.pipeline import STOP_REASONS
from spinefm.pipeline.components.loading import load_loop
from spinefm.pipeline.components.manifest import checkpoint_paths
from spinefm.pipeline.core.types import DOWN, Instance, LoopResult, MaskCrop, Step, Trace
from spinefm.pipeline.io.format import instances_json, label_map, polygons, read_prediction
from spinefm.pipeline.io.render import overlay
from spinefm.pipeline.runner.films import FilmSettings
from spinefm.pipeline.runner.inputs import find_inputs
from spinefm.pipeline.runner.predict import predict_films
from spinefm.pipeline.tools import reclassify
from spinefm.synthetic import PhantomConfig, generate_phantom

GOOD = {"a": 0, "nested/b": 1, "deep16": 2, "rgb": 3, "inverted": 4, "scan": 5}  # id: phantom seed
BAD = {"corrupt": "unreadable_image", "empty": "empty file", "tiny": "too small", "huge": "too large"}


def film(seed):
    return generate_phantom(seed, PhantomConfig(image_size=128)).image


@pytest.fixture(scope="module")
def films(tmp_path_factory):
    """Good films in several forms (8/16 bit, RGB, inverted, DICOM without suffix) and bad files."""
    folder = tmp_path_factory.mktemp("films")
    (folder / "nested").mkdir()
    cv2.imwrite(str(folder / "a.png"), film(0))
    cv2.imwrite(str(folder / "nested" / "b.png"), film(1))
    cv2.imwrite(str(folder / "deep16.png"), film(2).astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "rgb.png"), np.dstack([film(3)] * 3))
    cv2.imwrite(str(folder / "inverted.png"), 255 - film(4))
    write_dicom(folder / "scan", film(5).astype(np.uint16) * 16)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (folder / "empty.png").write_bytes(b"")
    cv2.imwrite(str(folder / "tiny.png"), np.full((32, 32), 100, np.uint8))
    cv2.imwrite(str(folder / "huge.png"), np.full((200, 200), 100, np.uint8))
    (folder / "notes.txt").write_text("not a film")
    return folder


def snapshot(folder):
    return {
        p.relative_to(folder).as_posix(): p.stat().st_mtime_ns
        for p in folder.rglob("*")
        if p.is_file() and p.name != "summary.json"
    }


def assert_consistent(output, image_id, shape):
    labels = cv2.imread(str(output / f"{image_id}.labels.png"), cv2.IMREAD_UNCHANGED)
    result = json.loads((output / f"{image_id}.json").read_text())
    picture = cv2.imread(str(output / f"{image_id}.overlay.png"))
    assert labels.dtype == np.uint8 and labels.shape == shape and picture.shape == (*shape, 3)
    assert (result["image"]["height"], result["image"]["width"]) == shape
    values = {i["category_id"] for i in result["instances"]}
    assert [LEVELS[i["category_id"] - 1] for i in result["instances"]] == [i["level"] for i in result["instances"]]
    assert set(np.unique(labels)) - {0} <= values
    for instance in result["instances"]:
        rows, cols = np.nonzero(labels == instance["category_id"])
        x0, y0, x1, y1 = instance["bbox_xyxy"]
        assert np.all((cols >= x0) & (cols < x1) & (rows >= y0) & (rows < y1))
    assert set(result["trace"]["stops"].values()) <= set(STOP_REASONS)
    return result


def test_a_folder_with_bad_films_then_a_resumed_run(manifest, films, tmp_path):
    output = tmp_path / "out"
    summary = infer(manifest, films, output, tmp_path / "logs", status=1)
    assert sorted(summary["processed"]) == sorted(GOOD) and summary["skipped"] == [] and summary["interrupted"] is None
    failed = {f["id"]: f["reason"] for f in summary["failed"]}
    assert set(failed) == set(BAD)
    for name, reason in BAD.items():
        assert reason in failed[name]
    walked = 0
    for image_id, seed in GOOD.items():
        result = assert_consistent(output, image_id, film(seed).shape)
        walked += bool(result["trace"]["steps"])
    assert walked, "the forced thresholds make the tiny models walk somewhere"
    assert_python_api_alike(manifest, films, output)
    assert json.loads((output / "inverted.json").read_text())["image"]["inverted"] is True
    assert json.loads((output / "scan.json").read_text())["image"]["inverted"] is False
    assert not list(output.rglob("*.tmp")) and not list(output.rglob(".*"))
    before = snapshot(output)
    again = infer(manifest, films, output, tmp_path / "logs", "allow_failures=true")
    assert sorted(again["skipped"]) == sorted(GOOD) and again["processed"] == []
    assert {f["id"] for f in again["failed"]} == set(BAD)
    assert snapshot(output) == before
    assert_reclassified_alike(manifest, output, tmp_path / "reclassified")


def assert_python_api_alike(manifest, films, output):
    """spinefm.load with infer.py's settings gives infer.py's instances (files read, inverted, walked alike)."""
    pipeline = spinefm.load(manifest, loop=LOOP, components=COMPONENTS)
    paths = [films / "a.png", films / "inverted.png", films / "scan"]
    for path, result in zip(paths, pipeline.segment_many(paths), strict=True):
        written = json.loads((output / f"{path.stem}.json").read_text())["instances"]
        assert [i.level for i in result.instances] == [i["level"] for i in written]
        assert np.allclose([i.centroid for i in result.instances], [i["centroid"] for i in written])


def assert_reclassified_alike(manifest, output, again):
    """The run's own classifier at the recorded positions and sides, on each film read again (the
    inverted one inverted as recorded), gives the run's probabilities and instances."""
    spine_end = str(checkpoint_paths(manifest, "best")["spine_end"])
    reclassify.main([str(output), str(again), spine_end, "duplicate_iou=1"])  # as WALKING
    for image_id in GOOD:
        before, after = (json.loads((folder / f"{image_id}.json").read_text()) for folder in (output, again))
        sides = before["trace"]["chain_sides"]
        assert len(sides) == len(before["trace"]["chain_probabilities"])
        assert all(side is None or side > 0 for side in sides)
        probabilities = [
            np.array(t["trace"]["chain_probabilities"], dtype=float) for t in (before, after)
        ]  # None (not classified) reads as NaN
        np.testing.assert_allclose(*probabilities, atol=1e-5)
        assert (
            after["instances"] == before["instances"]
            and after["trace"]["chain_levels"] == before["trace"]["chain_levels"]
        )
    with pytest.raises(SystemExit):
        reclassify.main([str(output), str(again), str(checkpoint_paths(manifest, "best")["medsa"])])


def test_a_list_file_and_a_single_film(manifest, films, tmp_path):
    listing = films / "nested" / "list.txt"
    listing.write_text("# two films and a missing one\nb.png\n\n../a.png\nmissing.png\n")
    summary = infer(manifest, listing, tmp_path / "listed", tmp_path / "logs", status=1)
    assert sorted(summary["processed"]) == ["a", "b"]
    assert [(f["id"], "missing_image" in f["reason"]) for f in summary["failed"]] == [("missing", True)]
    single = infer(manifest, films / "scan", tmp_path / "single", tmp_path / "logs", "pipeline.view=lateral_lumbar")
    assert single["processed"] == ["scan"]
    result = assert_consistent(tmp_path / "single", "scan", film(5).shape)
    assert result["image"]["view"] == "lateral_lumbar"


def test_inputs_are_found_sorted_with_ids_from_relative_paths(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "out").mkdir()
    for name in ["z.PNG", "sub/a.png", "sub/a.dcm", "sub/deeper/c.jpg", ".hidden/h.png", "out/o.png", "x.tif"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    write_dicom(tmp_path / "sub" / "1.2.840.5", np.zeros((8, 8), np.uint16))
    found = find_inputs(tmp_path, exclude=tmp_path / "out")
    assert [i.id for i in found] == ["sub/1.2.840", "sub/a.dcm", "sub/a.png", "sub/deeper/c", "x", "z"]
    assert found[0].path == tmp_path / "sub" / "1.2.840.5"
    listing = tmp_path / "sub" / "list.txt"
    listing.write_text(f"deeper/c.jpg\n# comment\n\n{tmp_path / 'x.tif'}\ndeeper/c.jpg\nnone.png\n")
    assert [(i.id, i.path.name) for i in find_inputs(listing)] == [
        ("deeper/c", "c.jpg"),
        ("none", "none.png"),
        ("x", "x.tif"),
    ]
    assert [i.id for i in find_inputs(tmp_path / "sub" / "a.png")] == ["a"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_inputs(tmp_path / "nothing")
    (tmp_path / "empty.txt").write_text("# nothing listed\n")
    with pytest.raises(FileNotFoundError, match="no images in .*empty.txt"):
        find_inputs(tmp_path / "empty.txt")
    (tmp_path / "no_films").mkdir()
    (tmp_path / "no_films" / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"no images in .*no_films: .*\.png .*\.dcm"):
        find_inputs(tmp_path / "no_films")


def hand_made_result(height, width):
    """L1 a 3 x 4 rectangle, L2 below it overlapping one row, T12 a mask partly cut by the border."""

    def instance(level, mask, offset):
        return Instance(
            MaskCrop(mask.astype(np.float32), offset),
            mask,
            np.argwhere(mask)[:, ::-1].mean(0) + offset,
            0.9,
            "seed",
            level=level,
        )

    full = np.ones((3, 4), bool)
    ring = np.ones((5, 5), bool)
    ring[2, 2] = False
    instances = [
        instance("T12", np.ones((4, 4), bool), (width - 2, 0)),
        instance("L1", full, (10, 20)),
        instance("L2", ring, (10, 22)),
    ]
    return LoopResult(
        "hand", (height, width), "lateral_lumbar", instances, Trace(stops={"up": "end", "down": "border"})
    )


def test_label_map_polygons_and_json_of_a_hand_made_result():
    result = hand_made_result(40, 30)
    labels = label_map(result)
    assert labels.dtype == np.uint8 and labels.shape == (40, 30)
    t12, l1, l2 = (LEVELS.index(level) + 1 for level in ("T12", "L1", "L2"))
    assert (labels == t12).sum() == 2 * 4 and np.all(labels[0:4, 28:30] == t12)
    assert np.all(labels[20:22, 10:14] == l1) and labels[22, 13] == l2  # the lower instance wins the overlap
    assert labels[24, 12] == 0 and (labels == l2).sum() == 24
    assert polygons(result.instances[1]) == [[10.0, 20.0, 10.0, 22.0, 13.0, 22.0, 13.0, 20.0]]
    payload = instances_json(result, {"file": "hand.png"})
    entry = payload["instances"][1]
    assert entry["category_id"] == l1 and entry["area"] == 12 and list(entry["bbox_xyxy"]) == [10, 20, 14, 23]
    assert payload["trace"]["stops"] == {"up": "end", "down": "border"} and payload["image"]["view"] == "lateral_lumbar"


def test_instances_json_is_strict_and_reads_back_the_exact_masks(tmp_path):
    result = hand_made_result(40, 30)
    result.trace.steps = [
        Step(DOWN, 0, np.zeros((3, 2)), np.array([np.nan, 12.0]), "border")
    ]  # a point that left the film
    atomic_write_json(tmp_path / "hand.json", instances_json(result, {"file": "hand.png"}))
    text = (tmp_path / "hand.json").read_text()
    assert "NaN" not in text and json.loads(text)["trace"]["steps"][0]["predicted"] == [None, 12.0]
    image, vertebrae, scores, _ = read_prediction(tmp_path / "hand.json")
    assert image["id"] == "hand" and [v.level for v in vertebrae] == ["T12", "L1", "L2"] and scores == [0.9] * 3
    for vertebra, instance in zip(vertebrae, result.instances):
        mask, offset = vertebra.mask_crop()
        assert offset == instance.offset and np.array_equal(mask, instance.mask)


def test_overlay_is_a_downscaled_colour_picture_of_the_masks():
    result = hand_made_result(400, 300)
    result.instances[1] = Instance(
        MaskCrop(np.ones((100, 150), np.float32), (50, 100)),
        np.ones((100, 150), bool),
        np.array([124.5, 149.5]),
        0.9,
        "up",
        level="L1",
    )
    film = np.tile(np.linspace(0, 4000, 300).astype(np.uint16), (400, 1))
    picture = overlay(film, result, label_map(result), max_side=200, alpha=0.5)
    assert picture.shape == (200, 150, 3) and picture.dtype == np.uint8
    inside = picture[60:90, 30:70].reshape(-1, 3)
    assert np.ptp(inside.astype(int), axis=1).mean() > 20  # coloured where the mask is
    grey = picture[170:200, 0:20].reshape(-1, 3)
    assert np.ptp(grey.astype(int), axis=1).max() == 0  # grey film elsewhere
    assert overlay(film, result, label_map(result), max_side=1000, alpha=0.5).shape == (400, 300, 3)


def test_two_cpu_processes_share_the_films_and_write_each_once(manifest, films, tmp_path):
    output = tmp_path / "ddp"
    summary = infer(
        manifest,
        films,
        output,
        tmp_path / "logs",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "films_per_batch=2",
        "num_workers=0",
        status=1,
    )
    assert summary["world_size"] == 2 and summary["total"] == len(GOOD) + len(BAD)
    assert sorted(summary["processed"]) == sorted(GOOD) and {f["id"] for f in summary["failed"]} == set(BAD)
    assert all(rank["processed"] > 0 for rank in summary["per_rank"])  # both ranks did real work
    assert sum(rank["processed"] + rank["failed"] for rank in summary["per_rank"]) == summary["total"]
    assert sorted(p.name for p in output.rglob("*.json") if p.name != "summary.json") == sorted(
        f"{Path(i).name}.json" for i in GOOD
    )
    assert len(list((tmp_path / "logs" / "infer" / "runs").iterdir())) == 1  # one run folder, not one per process


def test_bf16_autocast_runs_medsa_and_classifier_in_bf16_and_keeps_coordinates_float32(manifest, films, tmp_path):
    from lightning.pytorch import Trainer

    loop = load_loop(
        manifest,
        {"mask_threshold": 0.0, "final_threshold": 0.0, "overlap_iou": 1.0, "max_steps": 2},
        overrides={"maskrcnn": {"score_threshold": 0.0, "mask_threshold": 0.5}},
    )
    dtypes = {role: set() for role in loop.components}
    for part, component in loop.components.items():
        for module in component.model.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                module.register_forward_hook(lambda m, i, out, part=part: dtypes[part].add(out.dtype))

    def trainer(callbacks):
        return Trainer(
            accelerator="cpu",
            devices=1,
            precision="bf16-mixed",
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=callbacks,
        )

    summary = predict_films(
        loop, find_inputs(films / "a.png"), tmp_path / "bf16", trainer, settings=FilmSettings(min_side=40)
    )
    assert summary["processed"] == ["a"]
    assert torch.bfloat16 in dtypes["segmenter"] and torch.bfloat16 in dtypes["classifier"]
    assert dtypes["detector"] == {torch.float32} and dtypes["predictor"] == {torch.float32}
    assert torch.bfloat16 in dtypes["level_mapper"]  # probabilities, as the classifier's
    assert_consistent(tmp_path / "bf16", "a", film(0).shape)
