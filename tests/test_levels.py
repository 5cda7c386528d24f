import pytest

from spinefm.data.levels import (
    LEVELS,
    are_adjacent,
    level_above,
    level_below,
    level_index,
    level_range,
    missing_between,
    normalize_level,
    offset_level,
    sort_levels,
)


def test_vocabulary_runs_top_to_bottom():
    assert LEVELS[0] == "C1" and LEVELS[-1] == "S1"
    assert len(LEVELS) == 7 + 12 + 6 + 1
    assert level_index("C7") + 1 == level_index("T1")
    assert level_index("L5") < level_index("L6") < level_index("S1")


def test_normalize_and_unknown_names():
    assert normalize_level(" l3 ") == "L3"
    with pytest.raises(ValueError, match="T13"):
        normalize_level("T13")


def test_neighbours_skip_the_optional_l6():
    assert level_below("L5") == "S1"
    assert level_above("S1") == "L5"
    assert level_below("L6") == "S1"
    assert level_above("C1") is None and level_below("S1") is None
    assert level_below("C7") == "T1"


def test_gaps():
    assert missing_between("L3", "L5") == ["L4"]
    assert missing_between("L5", "S1") == []
    assert are_adjacent("T12", "L1") and not are_adjacent("T11", "L1")
    assert missing_between("C6", "T2") == ["C7", "T1"]


def test_ranges_sorting_and_offsets():
    assert level_range("T1", "L5") == [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)]
    assert level_range("L4", "S1") == ["L4", "L5", "S1"]
    assert level_range("L5", "L6") == ["L5", "L6"]
    assert sort_levels(["S1", "c3", "T12"]) == ["C3", "T12", "S1"]
    assert offset_level("C2", 5) == "C7" and offset_level("S1", -6) == "T12"
    assert offset_level("C2", -2) is None
    with pytest.raises(ValueError):
        level_range("L5", "T1")
