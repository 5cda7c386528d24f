"""Decoding a written chain again offline gives the loop's own result, and other settings change it."""

import json

from helpers.oracles import OracleSegmenter, Truth, middle, oracle_loop, phantom
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
