"""The walk tally over a run's traces: stop reasons, dropped positions, repairs, unclaimed detections."""

from spinefm.evaluation.walk import WalkTally, format_walk


def test_the_tally_adds_up_the_traces_and_prints_them():
    tally = WalkTally()
    tally.add({"stops": {"up": "border", "down": "end"}, "dropped": {"duplicate": 1}, "repairs": {"replaced": 2}})
    tally.add({"stops": {"up": "border", "down": "border"}, "repairs": {"replaced": 1, "inserted": 1}, "unclaimed": 3})
    tally.add({})  # a film without detections: no stops, nothing repaired
    summary = tally.summary()
    assert summary["stops"] == {"up": {"border": 2}, "down": {"end": 1, "border": 1}}
    assert summary["repairs"] == {"replaced": 3, "inserted": 1} and summary["dropped"] == {"duplicate": 1}
    assert summary["films"] == 3 and summary["unclaimed_per_film"] == 1.0
    lines = format_walk(summary)
    assert any(line.startswith("chain repairs") and line.endswith("replaced 3, inserted 1") for line in lines)
