"""evaluate.py end to end: scoring an oracle predictions folder, a missing film, the pipeline on tiny
models, wandb offline logging, and a stopped evaluation."""

import csv
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import spinefm.evaluation.run as evaluation_run
from helpers.train_runs import REPO
from spinefm.data.factory import load_records
from spinefm.interrupt import Interrupted
from spinefm.pipeline.core.types import Instance, LoopResult, MaskCrop, Trace
from spinefm.pipeline.runner.writers import write_outputs

SMALL = [
    "dataset=synthetic",
    "dataset.reader.num_images={train:0,val:0,test:6}",
    "dataset.reader.phantom.image_size=192",
    "progress_bar=false",
    "num_workers=0",
]


def evaluate(output, *extra, env=None):
    command = [sys.executable, "evaluate.py", f"hydra.run.dir={output}", *SMALL, *extra]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return json.loads((output / "summary.json").read_text()), done.stdout


def synthetic_test_records():
    dataset = OmegaConf.load(REPO / "configs" / "dataset" / "synthetic.yaml")
    dataset.reader.num_images = {"train": 0, "val": 0, "test": 6}
    dataset.reader.phantom.image_size = 192
    return load_records(dataset, "test")[0]


def oracle_folder(folder, records, drop=()):
    """infer.py-style outputs whose instances are the annotations themselves (one film left out per `drop`)."""
    for record in records:
        if record.id in drop:
            continue
        instances = []
        for vertebra in record.vertebrae:
            mask, offset = vertebra.mask_crop()
            instances.append(
                Instance(
                    MaskCrop(mask.astype(np.float32), offset),
                    mask,
                    vertebra.centroid(),
                    1.0,
                    "seed",
                    level=vertebra.level,
                )
            )
        result = LoopResult(record.id, record.image.shape, record.view, instances, Trace())
        write_outputs(folder, result, record.image, {"file": None}, {"max_side": 256, "alpha": 0.4})


def rows(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_an_oracle_folder_scores_perfectly_and_a_missing_film_is_all_missed(tmp_path):
    records = synthetic_test_records()
    dropped = records[0]
    oracle_folder(tmp_path / "oracle", records, drop={dropped.id})
    summary, stdout = evaluate(tmp_path / "report", f"predictions={tmp_path / 'oracle'}")
    n_gt = sum(len(r.vertebrae) for r in records)
    assert summary["n_gt"] == n_gt and summary["run"]["without_prediction"] == [dropped.id]
    assert summary["identified"] == n_gt - len(dropped.vertebrae)
    assert summary["identification_rate"] == pytest.approx((n_gt - len(dropped.vertebrae)) / n_gt)
    assert summary["mean_dice_identified"] == pytest.approx(1.0)
    one = summary["one_to_one"]
    assert one["false_positives"] == 0 and one["missed"] == len(dropped.vertebrae)
    assert one["label_accuracy"] == 1.0 and one["centroid_error_px"]["mean"] < 0.3  # polygon centroid vs its pixels
    assert one["hd95_px"]["mean"] == pytest.approx(0.0)
    per_image = {row["image_id"]: row for row in rows(tmp_path / "report" / "per_image.csv")}
    assert float(per_image[dropped.id]["image_dice"]) == 0.0
    assert all(float(per_image[r.id]["image_dice"]) == pytest.approx(1.0) for r in records[1:])
    assert len(rows(tmp_path / "report" / "per_vertebra.csv")) == n_gt
    clinical = {row["image_id"]: row for row in rows(tmp_path / "report" / "clinical.csv")}
    for record in records[1:]:  # the same outlines give the same angles
        row = clinical[record.id]
        measured = [
            k[len("pred_") :] for k in row if k.startswith("pred_") and row[k] and not k.endswith(("levels", "shape"))
        ]
        assert measured and all(
            float(row[f"pred_{k}"]) == pytest.approx(float(row[f"annotated_{k}"]))
            for k in measured
            if row[f"annotated_{k}"] != "nan"
        )
    assert (tmp_path / "report" / "worst" / f"{dropped.id}.png").is_file()  # the worst film is pictured
    assert "identification rate" in stdout and "without prediction 1" in stdout


def test_the_pipeline_on_tiny_models_writes_every_report_file_and_logs_to_wandb_offline(manifest, tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "SPINEFM_WANDB_OFFLINE": "true"}
    summary, _ = evaluate(
        tmp_path / "report", f"pipeline.checkpoints={manifest}", "wandb.enabled=true", "worst_films=2", env=env
    )
    report = tmp_path / "report"
    for name in (
        "per_vertebra.csv",
        "per_image.csv",
        "per_level.csv",
        "clinical.csv",
        "per_level_dice.png",
        "identification_rate.png",
    ):
        assert (report / name).is_file(), name
    assert len(list((report / "worst").glob("*.png"))) == 2
    assert summary["run"]["checkpoints"] == str(manifest) and summary["run"]["inference"]["world_size"] == 1
    assert sorted(p.name for p in (report / "predictions").glob("*.json") if p.name != "summary.json") == sorted(
        f"{r.id}.json" for r in synthetic_test_records()
    )
    assert summary["identified"] == round(summary["identification_rate"] * summary["n_gt"])
    assert summary["config"]["metrics"]["identify_dice"] == 0.4
    runs = list((report / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


def test_a_stopped_evaluation_says_so_and_writes_no_figures(tmp_path, monkeypatch):
    records = synthetic_test_records()
    oracle_folder(tmp_path / "oracle", records)
    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        cfg = compose(
            "evaluate", [*SMALL, f"predictions={tmp_path / 'oracle'}", f"paths.output_dir={tmp_path / 'report'}"]
        )

    def stopped_while_scoring(*args):
        raise Interrupted(signal.SIGTERM)

    monkeypatch.setattr(evaluation_run, "score", stopped_while_scoring)
    with pytest.raises(Interrupted) as stop:
        evaluation_run.evaluate(cfg)
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["summary.json"]
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["interrupted"] == "SIGTERM" and summary["run"]["films"] == len(records) and "n_gt" not in summary
    assert f"hydra.run.dir={tmp_path / 'report'}" in stop.value.__notes__[0]
