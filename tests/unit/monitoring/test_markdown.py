"""The monitoring window's report for Prefect's UI, from its MonitoringSummary."""

from __future__ import annotations

from finsent.monitoring.markdown import monitoring_markdown
from finsent.monitoring.run import MonitoringSummary

SCORING = [
    {
        "status": "scored", "file": "inbox/monday.csv", "sha256": "ab", "batch_id": "b1", "rows_in": 10, "rows_scored": 7,
        "rows_skipped": 3, "skipped": {"empty_text": 1, "bad_published_at": 2}, "model_name": "m", "model_version": "4", "message": "",
    },
    {
        "status": "already_scored", "file": "inbox/a|b.csv", "sha256": "cd", "batch_id": "b0", "rows_in": 5, "rows_scored": 0,
        "rows_skipped": 0, "skipped": {}, "model_name": "m", "model_version": "4", "message": "",
    },
]  # fmt: skip
VERDICT = {
    "drift": True,
    "signals_fired": ["prediction"],
    "details": {
        "prediction": {"value": 0.31, "threshold": 0.2, "method": "psi", "fired": True},
        "text_descriptors": {"value": 1, "threshold": 2, "method": "ks", "fired": False, "drifted_columns": ["text_length"]},
    },
    "signals_checked": ["text_descriptors", "prediction"],
    "skipped": {"performance": "no labelled rows in the window"},
}
ALERT = {
    "ticker": "AAPL",
    "day": "2026-11-30",
    "net_sentiment": -0.5,
    "baseline": 0.1,
    "change": -0.6,
    "count": 12,
    "baseline_count": 40,
    "direction": "down",
}
DECISION = {
    "should_retrain": True,
    "reasons": ["drift", "new_labels"],
    "explanation": ["drift confirmed over 2 consecutive window(s) (needs 2): ['prediction']", "600 new labelled rows (trigger at 500)"],
    "drifted_windows": 2,
    "counted_signals": ["prediction"],
    "inputs": {},
}


def window(**changes) -> MonitoringSummary:
    fields = dict(
        status="monitored", message="scored 7 rows from 1 file(s)", out_dir="artifacts/monitoring/x", champion_version="4",
        scoring=SCORING, window_rows=7, drift=VERDICT, sentiment={"alerts": [ALERT]}, decision=DECISION, mlflow_run_id="run9",
        alerts_recorded=["sentiment:AAPL:2026-11-30", "drift:window-4"],
    )  # fmt: skip
    return MonitoringSummary(**{**fields, **changes})


def test_files_with_rows_scored_and_skipped_by_reason():
    text = monitoring_markdown(window())
    assert "| inbox/monday.csv | scored | 10 | 7 | 3 | bad_published_at: 2; empty_text: 1 |" in text
    assert "| inbox/a\\|b.csv | already_scored | 5 | 0 | 0 | none |" in text  # a | in a file name stays in its cell


def test_drift_signals_with_value_and_threshold():
    text = monitoring_markdown(window())
    assert "**drift**: signals fired: prediction" in text
    assert "| prediction | yes | 0.31 | 0.2 | method: psi |" in text
    assert "| text_descriptors | no | 1 | 2 | drifted: text_length; method: ks |" in text
    assert "| performance | not computed | n/a | n/a | no labelled rows in the window |" in text


def test_alerts_and_their_recorded_keys():
    text = monitoring_markdown(window())
    assert "| AAPL | 2026-11-30 | -0.6 | -0.5 | +0.1 | 12 |" in text
    assert "- `sentiment:AAPL:2026-11-30`" in text and "- `drift:window-4`" in text


def test_retrain_decision_with_every_reason_and_explanation():
    text = monitoring_markdown(window())
    assert "**retrain**: drift, new_labels" in text
    for line in DECISION["explanation"]:
        assert f"- {line}" in text


def test_a_window_without_drift_or_alerts_says_so():
    quiet = window(
        drift=None, drift_skipped="current data has 5 rows; drift needs at least 20", sentiment={"alerts": []}, alerts_recorded=[],
        decision={**DECISION, "should_retrain": False, "reasons": [], "explanation": ["no drift verdicts yet"]},
    )  # fmt: skip
    text = monitoring_markdown(quiet)
    assert "Not computed: current data has 5 rows; drift needs at least 20" in text
    assert "No sentiment alert." in text and "No new alert recorded." in text
    assert "**no retrain**" in text and "- no drift verdicts yet" in text


def test_a_window_with_every_file_already_scored():
    text = monitoring_markdown(
        MonitoringSummary(status="already_scored", message="every file was already in the store", scoring=SCORING[1:])
    )
    assert "## Monitoring: already_scored" in text and "inbox/a\\|b.csv" in text
    assert "Drift" not in text and "Retrain" not in text


ESTIMATED = {
    "chosen": "doubly_robust",
    "methods": {
        "cbpe": {"estimated_accuracy": 0.9012, "accuracy_low": 0.88, "accuracy_high": 0.92, "estimated_macro_f1": 0.85,
                 "macro_f1_low": 0.82, "macro_f1_high": 0.88, "rows": 7, "effective_rows": None},
        "doubly_robust": {"estimated_accuracy": 0.78, "accuracy_low": 0.74, "accuracy_high": 0.81, "estimated_macro_f1": 0.7,
                          "macro_f1_low": 0.66, "macro_f1_high": 0.74, "rows": 7, "effective_rows": 412.5},
    },
    "skipped": {"atc": "no labelled reference"},
    "baseline_accuracy": 0.86,
    "estimated_drop": 0.08,
    "realised": {"accuracy": 0.75, "macro_f1": 0.69, "labelled_rows": 120},
}  # fmt: skip


def test_the_estimated_performance_with_intervals_and_the_realised_one():
    text = monitoring_markdown(window(estimated_performance=ESTIMATED))
    assert "### Estimated performance (no labels)" in text
    assert "**estimated accuracy 0.78** [0.74, 0.81] by `doubly_robust`; the champion's test accuracy 0.86, estimated drop +0.08" in text
    assert "| doubly_robust (chosen) | 0.78 | [0.74, 0.81] | 0.7 | [0.66, 0.74] | 7 | 412.5 |" in text
    assert "| cbpe | 0.901 | [0.88, 0.92] | 0.85 | [0.82, 0.88] | 7 |   |" in text
    assert "| atc | not computed |" in text and "no labelled reference |" in text
    assert "Realised on 120 labelled rows: accuracy 0.75, macro-F1 0.69." in text
    skipped = monitoring_markdown(window(estimated_performance=None, estimation_skipped="probabilities must sum to 1"))
    assert "Not computed: probabilities must sum to 1" in skipped
