"""What a hyper-parameter search found, for Prefect's UI: a table of its trials and a short note on the best.

The tuning flow publishes these as artifacts (a table, a markdown note); the flow holds no logic and the
library never imports prefect, so they are built here, beside ``tune.py``, from its ``TrialRecord`` list
(every trial of the study, a resumed study's earlier ones included) and its ``SearchSummary``. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from finsent import markdown as md
from finsent.training.tune import SearchSummary, TrialRecord


def params_text(params: dict[str, Any]) -> str:
    """``key=value, ...`` in key order: one table cell, however many keys were searched."""
    return ", ".join(f"{key}={md.number(value)}" for key, value in sorted(params.items()))


def trial_rows(trials: Sequence[TrialRecord]) -> list[dict[str, Any]]:
    """One row per trial (number, state, value, params, note) for ``create_table_artifact``; ``value`` is
    the dev macro-F1 of a complete trial, None otherwise."""
    rows = []
    for t in trials:
        notes = [n for n, on in (("baseline (settings before the search)", t.baseline), ("interrupted, queued again", t.interrupted)) if on]
        rows.append(
            {
                "number": t.number,
                "state": t.state,
                "value": None if t.value is None else round(t.value, 6),
                "params": params_text(t.params),
                "seconds": None if t.seconds is None else round(t.seconds, 1),
                "note": "; ".join(notes),
            }
        )
    return rows


def best_trial_headline(summary: SearchSummary) -> str:
    """One line: the best trial and its dev macro-F1 (the artifact's description)."""
    return f"study {md.line(summary.study_name)}: best trial {summary.best_trial}, dev macro-F1 {md.number(summary.best_dev_macro_f1)}"


def best_trial_markdown(summary: SearchSummary) -> str:
    """The best trial: its dev macro-F1 against the baseline's, its values, and where they were written."""
    gain = ""
    if summary.baseline_dev_macro_f1 is not None:
        gain = f" (baseline {md.number(summary.baseline_dev_macro_f1)}, {md.signed(summary.best_dev_macro_f1 - summary.baseline_dev_macro_f1)})"
    counts = ", ".join(f"{state.lower()}: {n}" for state, n in sorted(summary.trials.items()))
    written = summary.written or {f"train.{k}": v for k, v in summary.best_params.items()}
    parts = [
        f"## Tuning: study {md.line(summary.study_name)}",
        f"Best trial **{summary.best_trial}**: dev macro-F1 **{md.number(summary.best_dev_macro_f1)}**{gain}.",
        f"Trials: {counts or 'none'}.",
        md.table(["setting", "value"], [[key, md.number(value)] for key, value in sorted(written.items())]),
        f"Written to {md.code(summary.params_file)}; MLflow parent run {md.code(summary.parent_run_id)}.",
    ]
    return "\n\n".join(parts) + "\n"
