"""Decoding a written chain again offline gives the loop's own result, and other settings change it."""

import json

from helpers.oracles import (
    OracleClassifier,
    OracleLevelMapper,
    OracleSegmenter,
    Truth,
    middle,
    oracle_loop,
    phantom,
)
from spinefm.data.classes import BACKGROUND, TOP_END
from spinefm.io_utils import atomic_write_json
from spinefm.pipeline import DecodeConfig
from spinefm.pipeline.io.format import instances_json, read_chain
from spinefm.pipeline.tools.redecode import main, redecode


def written(tmp_path, result) -> dict:
    return round_trip(tmp_path / "film.json", instances_json(result, {}))


def round_trip(path, payload) -> dict:
    atomic_write_json(path, payload)
    return json.loads(path.read_text())


def test_the_same_settings_give_the_same_instances(tmp_path):
    record = phantom("lateral_cervical")
    truth = Truth(record)
    result = oracle_loop(record, middle(record), segmenter=OracleSegmenter(truth, blob=2)).run(
        record.image, view=record.view
    )
    payload = written(tmp_path, result)
    assert len(read_chain(payload)) == len(result.trace.chain_kept) > len(result.instances)  # blobs past both ends
    again = round_trip(tmp_path / "again.json", redecode(payload, DecodeConfig()))
    assert again["instances"] == payload["instances"] and again["chain"] == payload["chain"]
    assert [i["level"] for i in again["instances"]] == record.levels


def test_other_settings_decode_otherwise_and_the_command_writes_every_film(tmp_path):
    record = phantom("ap_thoracolumbar")
    result = oracle_loop(record, middle(record)).run(record.image, view=record.view)
    payload = written(tmp_path / "in", result)
    # a decoder that reads `vertebra` calls as junk keeps only what the ends and the seeds' detections say
    junk = DecodeConfig(evidence={"junk": {"vertebra": 1.0}, "vertebra": {"background": 1.0}})
    assert [i["level"] for i in redecode(payload, junk)["instances"]] != record.levels
    main([str(tmp_path / "in"), str(tmp_path / "out"), "min_evidence=0.1", "duplicate_iou=0.6"])
    out = json.loads((tmp_path / "out" / "film.json").read_text())
    assert [i["level"] for i in out["instances"]] == record.levels


def test_the_level_map_is_written_and_read_back(tmp_path):
    """A loop with a level mapper records its rows at the chain's positions; decoding the written
    chain again gives the loop's levels, and without the level map the one-off end calls win."""
    record = phantom("ap_thoracolumbar")
    truth = Truth(record)
    classifier = OracleClassifier(truth, wrong={"T1": BACKGROUND, "T2": TOP_END})
    loop = oracle_loop(record, middle(record), classifier=classifier, level_mapper=OracleLevelMapper(truth))
    payload = written(tmp_path, loop.run(record.image, view=record.view))
    assert len(payload["trace"]["chain_level_map"]) == len(payload["chain"])
    assert [i["level"] for i in redecode(payload, DecodeConfig())["instances"]] == record.levels
    assert [i["level"] for i in redecode(payload, DecodeConfig(level_map_weight=0.0))["instances"]] != record.levels
