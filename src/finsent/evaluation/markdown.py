"""The test metrics as markdown: the headline numbers and one row per class.

The training flow shows what a run found in Prefect's UI; the metrics part of that page is written here,
beside ``evaluate.py`` that computes them, from the dict it writes as ``eval/metrics.json``. The
registry's report (``finsent.registry.markdown``) adds the gate's decision and the MLflow links. Pure:
a metrics dict in, markdown out; a key the dict lacks is shown as ``n/a``, never an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from finsent import markdown as md
from finsent.training.calibration import Calibration, CalibrationError
from finsent.vocabulary import LABELS

HEADLINE = (
    ("macro_f1", "macro-F1"),
    ("accuracy", "accuracy"),
    ("weighted_f1", "weighted F1"),
    ("ece", "ECE (calibration error)"),
    ("ece_uncalibrated", "ECE before calibration"),
)
PER_CLASS = ("precision", "recall", "f1", "support")


def headline_rows(metrics: Mapping[str, Any], dev_macro_f1: float | None = None) -> list[tuple[str, str]]:
    """(name, value) of the headline test metrics, the calibration the model serves, then the dev
    macro-F1 of the weights kept when the run had a dev split, and the number of test rows."""
    rows = [(name, md.number(metrics.get(key))) for key, name in HEADLINE]
    if metrics.get("calibration") is not None:
        try:
            rows.append(("calibration (fitted on dev)", Calibration.from_dict(metrics["calibration"]).describe()))
        except CalibrationError:
            rows.append(("calibration (fitted on dev)", md.MISSING))
    if dev_macro_f1 is not None:
        rows.append(("dev macro-F1 (weights kept)", md.number(dev_macro_f1)))
    if metrics.get("rows") is not None:
        rows.append(("test rows", md.number(metrics["rows"])))
    return rows


def per_class_rows(metrics: Mapping[str, Any]) -> list[list[str]]:
    """One row per class: precision, recall, F1 and support; the vocabulary's classes first, in order."""
    per_class: Mapping[str, Mapping[str, Any]] = metrics.get("per_class") or {}
    names = [n for n in LABELS if n in per_class] + sorted(n for n in per_class if n not in LABELS)
    return [[name, *(md.number(per_class[name].get(key)) for key in PER_CLASS)] for name in names]


def metrics_markdown(metrics: Mapping[str, Any], dev_macro_f1: float | None = None, heading: str = "###") -> str:
    """The test metrics and the per-class table, under ``heading``-level titles."""
    parts = [f"{heading} Test metrics", md.table(["metric", "value"], headline_rows(metrics, dev_macro_f1))]
    classes = per_class_rows(metrics)
    if classes:
        parts += [f"{heading} Per class", md.table(["class", "precision", "recall", "F1", "support"], classes)]
    return "\n\n".join(parts)
