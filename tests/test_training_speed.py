"""benchmarks/training_speed.py on tiny settings: it trains every stage a few steps and writes its table."""

import json

import pytest

from benchmarks.training_speed import PARTS, STAGES, main


def test_the_training_benchmark_splits_every_stages_step_and_writes_its_table(tmp_path, capsys):
    out = tmp_path / "training_speed.json"
    report = main(
        [
            "--images",
            "3",
            "--batch-size",
            "4",
            "--steps",
            "4",
            "--warmup",
            "1",
            "--loader-samples",
            "16",
            "--out",
            str(out),
            "--override",
            "channels_last=true",
        ]
    )
    table = capsys.readouterr().out
    assert [row["stage"] for row in report["rows"]] == list(STAGES)
    for row in report["rows"]:
        assert row["steps"] == 2 and row["loader_samples_per_s"] > 0
        assert all(row[part] >= 0 for part in PARTS if part != "logging")
        assert sum(row[part] for part in PARTS) == pytest.approx(row["step"])  # the parts make up the step
        assert any(line.startswith(row["stage"]) for line in table.splitlines())
    assert json.loads(out.read_text()) == report
