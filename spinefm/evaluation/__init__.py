"""Evaluation: SpineFM's identification counting, one-to-one matching, boundary distances, mask mAP, reports."""

from spinefm.evaluation.metrics import EvaluationSettings, FilmEvaluation, MetricAccumulator, evaluate_film, summarize
from spinefm.evaluation.report import format_table, worst_images, write_report

__all__ = [
    "EvaluationSettings",
    "FilmEvaluation",
    "MetricAccumulator",
    "evaluate_film",
    "format_table",
    "summarize",
    "worst_images",
    "write_report",
]
