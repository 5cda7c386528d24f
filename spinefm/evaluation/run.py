"""`evaluate.py`: run the pipeline on a dataset split (or read an infer.py output folder), score every
film against its annotations, and write the report.

Output folder (the Hydra run folder): `predictions/` (infer.py's files, when the pipeline ran),
`summary.json` (every headline figure, the clinical angles' errors, the walks' stop reasons and
unclaimed detections (`walk`), what was run: dataset, split,
checkpoints, inference counts, and the resolved config), `per_vertebra.csv`, `per_image.csv`,
`per_level.csv`, `clinical.csv`, `per_level_dice.png`, `identification_rate.png`, and `worst/`:
the films with the lowest per-image Dice, predicted masks in colour and annotated outlines in white.

A film without a prediction file (its inference failed, or the folder lacks it) is scored as an
empty prediction, every vertebra missed, and listed in `summary["run"]["without_prediction"]`; a
film whose record cannot be read at all is listed in `unreadable` and not scored.

Stopped by SIGINT or SIGTERM, the run keeps the predictions made and writes no report: its
summary.json is `{"interrupted": "SIGTERM", "run": ...}`.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from spinefm.data.factory import load_records
from spinefm.data.problems import DataError
from spinefm.data.record import ImageRecord
from spinefm.evaluation.clinical_report import clinical_comparison, clinical_summary
from spinefm.evaluation.metrics import EvaluationSettings, MetricAccumulator
from spinefm.evaluation.pictures import comparison_picture
from spinefm.evaluation.report import format_table, worst_images, write_report
from spinefm.evaluation.walk import WalkTally, format_walk
from spinefm.interrupt import Interrupted
from spinefm.io_utils import atomic_write_csv, atomic_write_json, atomic_write_png
from spinefm.pipeline.io.format import output_paths, read_prediction
from spinefm.pipeline.runner.from_config import loop_from_config, predict_options
from spinefm.pipeline.runner.predict import predict_films
from spinefm.progress import progress


def evaluate(cfg: DictConfig) -> dict | None:
    """The summary (also written to summary.json); None on ranks other than 0 of a distributed run.
    `run.failed` counts the films not inferred or not scored (unreadable). Stopped by a signal
    (`Interrupted`), summary.json says so and holds what was run, with no figures."""
    output_dir = Path(cfg.paths.output_dir)
    records, skipped = load_records(cfg.dataset, cfg.split, cfg.max_images)
    run = {
        "dataset": cfg.dataset.name,
        "root": cfg.dataset.get("root"),
        "split": cfg.split,
        "films": len(records),
        "unreadable": skipped,
    }
    try:
        return _evaluate(cfg, records, run, output_dir)
    except Interrupted as stop:
        if rank_zero_only.rank == 0:
            atomic_write_json(output_dir / "summary.json", {"interrupted": stop.name, "run": run})
            stop.add_note(
                f"no report: the same command with hydra.run.dir={output_dir} goes on from the predictions made"
            )
        raise


def _evaluate(cfg: DictConfig, records: list[ImageRecord], run: dict, output_dir: Path) -> dict | None:
    if cfg.predictions is None:
        loop, view, manifest = loop_from_config(cfg)
        predictions = output_dir / "predictions"
        run["checkpoints"] = manifest["path"]
        run["components"] = {
            name: entry.get("best_checkpoint") for name, entry in (manifest.get("components") or {}).items()
        }
        run["predictions_folder"] = str(predictions)
        inference = predict_films(
            loop,
            records,
            predictions,
            source=f"dataset={cfg.dataset.name} split={cfg.split}",
            view=view,
            **predict_options(cfg),
        )
        if inference is None:
            return None
        run["inference"] = {key: inference[key] for key in ("seconds", "world_size", "failed")}
    else:
        predictions, view = Path(cfg.predictions), cfg.pipeline.view
        run["predictions"] = run["predictions_folder"] = str(predictions)
    settings = EvaluationSettings(**cfg.metrics)
    scored = score(records, predictions, settings, view)
    run["without_prediction"] = scored["without_prediction"]
    failures = (
        run["inference"]["failed"] if "inference" in run else scored["unreadable"]
    )  # a film unreadable here failed inference too
    run["failed"] = len(run["unreadable"]) + len(failures)
    run["unreadable"] += scored["unreadable"]
    summary = scored["accumulator"].summary()
    summary["clinical"] = clinical_summary(scored["clinical"], settings.cobb_tilt)
    summary["walk"] = scored["walk"]
    summary["run"] = run
    summary["config"] = OmegaConf.to_container(cfg, resolve=True)
    write_report(output_dir, scored["accumulator"].vertebra_rows, scored["accumulator"].image_rows, summary)
    atomic_write_csv(output_dir / "clinical.csv", scored["clinical"], _columns(scored["clinical"]))
    by_id = {record.id: record for record in records}
    for row in worst_images(scored["accumulator"].image_rows, cfg.worst_films):
        _draw(by_id[row["image_id"]], predictions, output_dir / "worst", cfg.overlay)
    atomic_write_json(output_dir / "summary.json", summary)
    return summary


def score(records: list[ImageRecord], predictions: Path, settings: EvaluationSettings, view: str | None) -> dict:
    accumulator, walk = MetricAccumulator(settings), WalkTally()
    clinical, without_prediction, unreadable = [], [], []
    for record in progress(records, "score", unit="films"):
        path = output_paths(predictions, record.id)["instances"]
        spacing = record.spacing_mm
        if path.is_file():
            image, pred, scores, trace = read_prediction(path)
            walk.add(trace)
            shape = (image["height"], image["width"])
            spacing = spacing or (tuple(image["spacing_mm"]) if image.get("spacing_mm") else None)
            film_view = record.view or image.get("view") or view
        else:
            try:
                shape = record.image_shape()
            except DataError as error:
                unreadable.append(str(error.problem))
                continue
            pred, scores, film_view = [], [], record.view or view
            without_prediction.append(record.id)
        accumulator.add(record.id, record.vertebrae, pred, scores, shape, spacing)
        clinical.append(clinical_comparison(record, pred, film_view, shape[0], settings.cobb_tilt))
    return {
        "accumulator": accumulator,
        "walk": walk.summary(),
        "clinical": clinical,
        "without_prediction": without_prediction,
        "unreadable": unreadable,
    }


def _draw(record: ImageRecord, predictions: Path, folder: Path, overlay: DictConfig) -> None:
    path = output_paths(predictions, record.id)["instances"]
    pred = read_prediction(path)[1] if path.is_file() else []
    picture = comparison_picture(record.load_image(), record.vertebrae, pred, overlay.max_side, overlay.alpha)
    atomic_write_png(folder / f"{record.id}.png", picture)


def _columns(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


def format_report(summary: dict) -> str:
    """The headline table, then the clinical figures and what did not get scored."""
    lines = [format_table(summary)]
    for key, value in summary["clinical"].items():
        text = (
            ", ".join(f"{k} {v:.2f}" for k, v in value.items())
            if isinstance(value, dict)
            else f"{value:.2f}"
            if isinstance(value, float)
            else str(value)
        )
        lines.append(f"{key:<32} {text}")
    lines += format_walk(summary["walk"])
    run = summary["run"]
    lines.append(
        f"films {run['films']}, without prediction {len(run['without_prediction'])}, "
        f"unreadable {len(run['unreadable'])}"
    )
    return "\n".join(lines)
