"""The walk tally over a run's traces: stop reasons, dropped positions, repairs, unclaimed detections,
patches segmented."""

from spinefm.evaluation.walk import WalkTally, format_walk


def test_the_tally_adds_up_the_traces_and_prints_them():
    tally = WalkTally()
    steps = [{"side": 40}, {"side": 40}, {"side": None}]  # the last one stopped at the border: not segmented
    tally.add(
        {
            "stops": {"up": "border", "down": "end"},
            "dropped": {"duplicate": 1},
            "repairs": {"replaced": 2},
            "seeds": [4, 5, 6],
            "steps": steps,
        }
    )
    tally.add({"stops": {"up": "border", "down": "border"}, "repairs": {"replaced": 1, "inserted": 1}, "unclaimed": 3})
    tally.add({})  # a film without detections: no stops, nothing repaired
    summary = tally.summary()
    assert summary["stops"] == {"up": {"border": 2}, "down": {"end": 1, "border": 1}}
    assert summary["repairs"] == {"replaced": 3, "inserted": 1} and summary["dropped"] == {"duplicate": 1}
    assert summary["films"] == 3 and summary["unclaimed_per_film"] == 1.0
    assert summary["patches_per_film"] == (3 + 2 + 2 + 2) / 3
    lines = format_walk(summary)
    assert any(line.startswith("chain repairs") and line.endswith("replaced 3, inserted 1") for line in lines)
    assert any(line.startswith("Med-SA patches per film") and line.endswith(" 3.0") for line in lines)
