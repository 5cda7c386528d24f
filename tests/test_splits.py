from spinefm.data.splits import assign_splits


def test_sizes_follow_fractions_and_groups_stay_together():
    groups = [f"patient{i // 2}" for i in range(200)]  # two films per patient
    assignment = assign_splits(groups, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=3)
    counts = {name: sum(1 for g in set(groups) if assignment[g] == name) for name in ("train", "val", "test")}
    assert counts == {"train": 80, "val": 10, "test": 10}


def test_seeded_and_independent_of_listing_order():
    groups = [f"g{i}" for i in range(50)]
    fractions = {"train": 0.6, "val": 0.2, "test": 0.2}
    assert assign_splits(groups, fractions, 1) == assign_splits(groups[::-1], fractions, 1)
    assert assign_splits(groups, fractions, 1) != assign_splits(groups, fractions, 2)


def test_zero_fraction_split_stays_empty():
    assignment = assign_splits([f"g{i}" for i in range(7)], {"train": 1.0, "val": 0.0, "test": 0.0}, 0)
    assert set(assignment.values()) == {"train"}
