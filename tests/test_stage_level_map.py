"""Level map stage: row targets from annotated centroids, reading rows at a height, and a tiny map
trained by train.py that beats chance on synthetic films and serves the pipeline from its checkpoint."""

import numpy as np

from helpers.train_runs import metrics, run_dirs, run_train
from spinefm.data.level_rows import ABOVE, BELOW, IGNORE, level_map_names, read_rows, row_targets
from spinefm.data.levels import level_range
from spinefm.pipeline.components.adapters import LevelMapAdapter

AP_ENDS = {"ap_thoracolumbar": {"top": "T1", "bottom": "L5"}}
NAMES = level_map_names("T1", "L5", AP_ENDS)


def test_the_names_run_from_above_past_the_end_landmarks_to_below():
    assert NAMES == [ABOVE, "C7", *level_range("T1", "L5"), "S1", BELOW]
    assert level_map_names("C2", "S1", {"lumbar": {"top": None, "bottom": "S1"}})[:2] == [ABOVE, "C2"]


def test_each_row_takes_the_level_whose_span_holds_it():
    """T1..L5 every 10 px from y = 50, rows of 5 px: each level holds its rows halfway to its
    neighbours, C7 and S1 the spacing past the ends, `above` / `below` the rest."""
    ys = 50.0 + 10.0 * np.arange(17)
    targets = row_targets(ys, level_range("T1", "L5"), NAMES, height=300, rows=60)
    names = [NAMES[t] for t in targets]
    assert names[:7] == [ABOVE] * 7 and names[7:9] == ["C7"] * 2  # C7: rows centred at 37.5 and 42.5
    assert names[9:11] == ["T1", "T1"] and names[11:13] == ["T2", "T2"]
    assert names[43:45] == ["S1", "S1"] and set(names[45:]) == {BELOW}


def test_rows_of_unknown_levels_are_left_out():
    """A film annotated from T6 only: the rows of T5 (one spacing up) are known, those above it hold
    T4..C7 at unknown places; a vertebra missing inside the chain leaves its rows unknown too."""
    levels = level_range("T6", "L5")
    ys = 50.0 + 10.0 * np.arange(len(levels))
    targets = row_targets(ys, levels, NAMES, height=200, rows=40)
    assert [NAMES[t] for t in targets[7:9]] == ["T5", "T5"] and set(targets[:7]) == {IGNORE}
    gap = [lv for lv in levels if lv != "T9"]
    holed = row_targets(np.delete(ys, 3), gap, NAMES, height=200, rows=40)
    assert set(holed[14:18]) == {IGNORE} and NAMES[holed[13]] == "T8" and NAMES[holed[18]] == "T10"


def test_rows_are_read_between_row_centres():
    probabilities = np.eye(4)  # 4 rows of a 40 px film: centres at 5, 15, 25, 35
    read = read_rows(probabilities, np.array([0.0, 5.0, 10.0, 35.0, 40.0]), height=40)
    np.testing.assert_allclose(read, [[1, 0, 0, 0], [1, 0, 0, 0], [0.5, 0.5, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1]])


def test_a_tiny_level_map_beats_chance_on_synthetic_films(tmp_path, one_thread):
    """Whole synthetic films (three views, C2..S1): a tiny map names the level at most vertebrae'
    rows within one, and its checkpoint serves the level mapper role with the same classes."""
    run_train(
        tmp_path,
        "stage=level_map",
        "stage.module.model.channels=[8,8,16,16,16]",
        "stage.module.model.hidden=16",
        "stage.data.input_size=[128,64]",
        "dataset.reader.num_images={train:48,val:12,test:0}",
        "dataset.reader.phantom.image_size=256",
        "stage.max_epochs=20",
    )
    (run,) = run_dirs(tmp_path, "train_level_map")
    result = metrics(run)
    names = level_map_names("C2", "S1", {"lateral_cervical": {"top": "C2"}, "lateral_lumbar": {"bottom": "S1"}})
    assert result["best_value"] > 3 / len(names)  # chance: about 1 in 27
    assert result["metrics"]["val/level_within_one"] > 0.5

    mapper = LevelMapAdapter.from_checkpoint(result["best_checkpoint"])
    assert mapper.names == names and mapper.input_size == (128, 64)
    films = [np.zeros((300, 120), np.uint8), np.full((256, 256), 90, np.uint8)]
    maps = mapper.map_levels(films)
    assert [m.shape for m in maps] == [(16, len(names))] * 2
    np.testing.assert_allclose([m.sum(axis=1) for m in maps], 1.0, rtol=1e-5)
