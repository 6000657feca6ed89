"""What a monitoring window found, as markdown for Prefect's UI: the rows scored and skipped per file,
the drift verdict signal by signal, the label-free estimates of accuracy and macro-F1 (beside the
realised ones when labels came), the sentiment alerts and the alert keys recorded, and the retrain
decision with its reasons.

The monitoring flow publishes this text as an artifact; the flow holds no logic and the library never
imports prefect, so the text is written here, from the window's ``MonitoringSummary`` (the same record
as its ``summary.json``). Pure: a summary in, markdown out; a part the window did not reach (nothing
new to score, drift not computed) says so instead of failing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from finsent import markdown as md

if TYPE_CHECKING:  # the summary's module loads the store and MLflow; the text needs only its fields
    from finsent.monitoring.run import MonitoringSummary


def skipped_text(skipped: Mapping[str, int] | None) -> str:
    """``reason: rows`` for each reason a row was skipped, most rows first; ``none`` when none was."""
    if not skipped:
        return "none"
    return "; ".join(f"{reason}: {rows}" for reason, rows in sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0])))


def scoring_markdown(scoring: Sequence[Mapping[str, Any]], heading: str = "###") -> str:
    """One row per file: its status, the rows read, scored and skipped, and the skipped rows by reason."""
    if not scoring:
        return f"{heading} Files\n\nNo file scored."
    rows = [
        [
            s.get("file", ""),
            s.get("status", ""),
            s.get("rows_in"),
            s.get("rows_scored"),
            s.get("rows_skipped"),
            skipped_text(s.get("skipped")),
        ]
        for s in scoring
    ]
    return f"{heading} Files\n\n" + md.table(["file", "status", "rows in", "scored", "skipped", "skipped by reason"], rows)


def signal_note(detail: Mapping[str, Any]) -> str:
    """What else a signal's record says that a person reads: the drifted columns, the method."""
    notes = []
    if detail.get("drifted_columns"):
        notes.append("drifted: " + ", ".join(str(c) for c in detail["drifted_columns"]))
    if detail.get("method"):
        notes.append(f"method: {detail['method']}")
    return "; ".join(notes)


def drift_markdown(verdict: Mapping[str, Any] | None, skipped_reason: str | None = None, heading: str = "###") -> str:
    """The verdict (drift or not, which signals fired), then each signal: fired, value vs threshold."""
    if verdict is None:
        return f"{heading} Drift\n\nNot computed: {md.line(skipped_reason or 'no verdict')}"
    fired = list(verdict.get("signals_fired") or [])
    headline = f"**drift**: signals fired: {', '.join(fired)}" if verdict.get("drift") else "**no drift**: no signal fired"
    details: Mapping[str, Mapping[str, Any]] = verdict.get("details") or {}
    rows: list[list[object]] = [
        [name, "yes" if d.get("fired") else "no", d.get("value"), d.get("threshold"), signal_note(d)] for name, d in details.items()
    ]
    rows += [[name, "not computed", None, None, why] for name, why in (verdict.get("skipped") or {}).items()]
    parts = [f"{heading} Drift", headline]
    if rows:
        parts.append(md.table(["signal", "fired", "value", "threshold", "note"], rows))
    return "\n\n".join(parts)


def _interval(low: object, high: object) -> str:
    return f"[{md.number(low, 3)}, {md.number(high, 3)}]"


def estimate_markdown(estimated: Mapping[str, Any] | None, skipped_reason: str | None = None, heading: str = "###") -> str:
    """The label-free estimates: the chosen one with its drop from the champion's test accuracy, then each
    method's accuracy and macro-F1 with their intervals, and the realised numbers when labels came."""
    title = f"{heading} Estimated performance (no labels)"
    if not estimated:
        return f"{title}\n\nNot computed: {md.line(skipped_reason or 'no estimate')}"
    methods: Mapping[str, Mapping[str, Any]] = estimated.get("methods") or {}
    chosen = estimated.get("chosen")
    parts = [title]
    best = methods.get(chosen or "")
    if best:
        line = f"**estimated accuracy {md.number(best.get('estimated_accuracy'), 3)}** {_interval(best.get('accuracy_low'), best.get('accuracy_high'))} by {md.code(chosen)}"
        if estimated.get("baseline_accuracy") is not None:
            line += f"; the champion's test accuracy {md.number(estimated['baseline_accuracy'], 3)}, estimated drop {md.signed(estimated.get('estimated_drop'))}"
        parts.append(line)
    else:
        parts.append("No estimate: too few rows.")
    rows: list[list[object]] = [
        [
            f"{name} (chosen)" if name == chosen else name,
            md.number(e.get("estimated_accuracy"), 3),
            _interval(e.get("accuracy_low"), e.get("accuracy_high")),
            md.number(e.get("estimated_macro_f1"), 3),
            _interval(e.get("macro_f1_low"), e.get("macro_f1_high")),
            e.get("rows"),
            md.number(e.get("effective_rows"), 4) if e.get("effective_rows") is not None else "",
        ]
        for name, e in methods.items()
    ]
    rows += [[name, "not computed", "", "", "", None, why] for name, why in (estimated.get("skipped") or {}).items()]
    if rows:
        parts.append(
            md.table(["method", "accuracy", "interval", "macro-F1", "interval", "rows", "effective reference rows / why not"], rows)
        )
    realised = estimated.get("realised")
    if realised:
        parts.append(
            f"Realised on {realised.get('labelled_rows')} labelled rows: accuracy {md.number(realised.get('accuracy'), 3)}, "
            f"macro-F1 {md.number(realised.get('macro_f1'), 3)}."
        )
    return "\n\n".join(parts)


def alerts_markdown(alerts: Sequence[Mapping[str, Any]], recorded: Sequence[str], heading: str = "###") -> str:
    """The sentiment alerts of the window (ticker, day, change against the baseline) and the keys of the
    alerts recorded this time (an alert recorded by an earlier window is not recorded again)."""
    parts = [f"{heading} Alerts"]
    if alerts:
        rows = [
            [
                a.get("ticker"),
                a.get("day"),
                md.signed(a.get("change")),
                md.signed(a.get("net_sentiment")),
                md.signed(a.get("baseline")),
                a.get("count"),
            ]
            for a in alerts
        ]
        parts.append(md.table(["ticker", "day", "change", "net sentiment", "baseline", "texts"], rows))
    else:
        parts.append("No sentiment alert.")
    if recorded:
        parts.append("Recorded (`finsent alerts list`):\n\n" + "\n".join(f"- {md.code(key)}" for key in recorded))
    else:
        parts.append("No new alert recorded.")
    return "\n\n".join(parts)


def decision_markdown(decision: Mapping[str, Any] | None, heading: str = "###") -> str:
    """The retrain policy's decision: whether to retrain, the reasons that fired, and why, in words."""
    if decision is None:
        return f"{heading} Retrain\n\nNo decision (the window ended before the policy ran)."
    reasons = [str(r) for r in decision.get("reasons") or []]
    verdict = f"**retrain**: {', '.join(reasons)}" if decision.get("should_retrain") else "**no retrain**"
    lines = [f"{heading} Retrain", verdict]
    explanation = [md.line(e) for e in decision.get("explanation") or []]
    if explanation:
        lines.append("\n".join(f"- {e}" for e in explanation))
    return "\n\n".join(lines)


def retrain_markdown(retrain: Mapping[str, Any], heading: str = "###") -> str:
    """What the retrain flow did, when it ran within this monitoring run."""
    registration = retrain.get("registration") or {}
    promoted = "promoted" if registration.get("promoted") else "not promoted"
    return f"{heading} Retrained\n\nRegistered version {md.line(registration.get('version', '?'))}: {promoted}."


def monitoring_markdown(summary: MonitoringSummary) -> str:
    """The whole window: what was scored, drift, alerts, the retrain decision, and where to read more."""
    parts = [f"## Monitoring: {md.line(summary.status)}", md.line(summary.message)]
    facts = [("champion version", summary.champion_version), ("window rows", summary.window_rows)]
    facts += [("MLflow run", summary.mlflow_run_id), ("output folder", summary.out_dir)]
    parts.append(md.table(["", "value"], [[name, value] for name, value in facts if value is not None]))
    parts.append(scoring_markdown(summary.scoring))
    if summary.status == "monitored":
        parts.append(drift_markdown(summary.drift, summary.drift_skipped))
        parts.append(estimate_markdown(summary.estimated_performance, summary.estimation_skipped))
        parts.append(alerts_markdown((summary.sentiment or {}).get("alerts") or [], summary.alerts_recorded))
        parts.append(decision_markdown(summary.decision))
    if summary.retrain:
        parts.append(retrain_markdown(summary.retrain))
    return "\n\n".join(parts) + "\n"
