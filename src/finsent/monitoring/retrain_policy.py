"""Whether monitoring should start the training flow: a pure decision on the recent drift verdicts.

Retraining fires for one of these reasons:
- ``drift``: the last ``confirm_windows`` windows each had at least ``min_window_rows`` rows and at least
  ``min_signals`` of the counted signals fired (one noisy window is not enough), and at least
  ``min_new_labelled_rows`` newly labelled rows exist;
- ``new_labels``: at least ``new_labels_trigger_rows`` newly labelled rows, drift or not;
- ``schedule``: the flow's schedule says so (the flow passes ``scheduled=True``).
Any of them is held back during the cool-down after the last retrain. Firing only starts training:
the new model is promoted by the registry gate or not at all, so drift alone never promotes anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from finsent import utc
from finsent.config import RetrainPolicyParams


@dataclass(frozen=True)
class WindowVerdict:
    """The drift verdict of one monitoring window (a scored batch, or a day of them)."""

    window_end: datetime
    rows: int
    signals_fired: tuple[str, ...] = ()


@dataclass(frozen=True)
class RetrainDecision:
    should_retrain: bool
    reasons: list[str] = field(default_factory=list)  # drift | new_labels | schedule
    explanation: list[str] = field(default_factory=list)  # why, or why not, in words
    drifted_windows: int = 0  # consecutive drifted windows, counting back from the latest
    counted_signals: list[str] = field(default_factory=list)  # counted signals fired in the latest window


def window_drifted(window: WindowVerdict, p: RetrainPolicyParams) -> bool:
    counted = set(window.signals_fired) & set(p.signals)
    return window.rows >= p.min_window_rows and len(counted) >= p.min_signals


def decide_retrain(
    history: Sequence[WindowVerdict],
    now: datetime,
    last_retrain_at: datetime | None,
    new_labelled_rows: int,
    p: RetrainPolicyParams,
    *,
    scheduled: bool = False,
) -> RetrainDecision:
    """Decide from the window verdicts (any order; only those up to ``now`` count). Naive times are UTC."""
    now = utc.aware(now)
    windows = sorted((w for w in history if utc.aware(w.window_end) <= now), key=lambda w: utc.aware(w.window_end))
    streak = 0
    for window in reversed(windows):
        if not window_drifted(window, p):
            break
        streak += 1
    latest_counted = sorted(set(windows[-1].signals_fired) & set(p.signals)) if windows else []

    reasons: list[str] = []
    explanation: list[str] = []
    if streak >= p.confirm_windows:
        if new_labelled_rows >= p.min_new_labelled_rows:
            reasons.append("drift")
            explanation.append(f"drift confirmed over {streak} consecutive window(s) (needs {p.confirm_windows}): {latest_counted}")
        else:
            explanation.append(f"drift confirmed but only {new_labelled_rows} new labelled rows (needs {p.min_new_labelled_rows})")
    elif windows:
        explanation.append(f"drift in {streak} consecutive window(s), {p.confirm_windows} needed")
    else:
        explanation.append("no drift verdicts yet")
    if p.new_labels_trigger_rows is not None and new_labelled_rows >= p.new_labels_trigger_rows:
        reasons.append("new_labels")
        explanation.append(f"{new_labelled_rows} new labelled rows (trigger at {p.new_labels_trigger_rows})")
    if scheduled:
        reasons.append("schedule")
        explanation.append("scheduled retrain")

    if reasons and last_retrain_at is not None:
        ready_at = utc.aware(last_retrain_at) + timedelta(hours=p.cooldown_hours)
        if now < ready_at:
            explanation.append(f"held back by the cool-down until {ready_at.isoformat()} (reasons: {reasons})")
            return RetrainDecision(False, [], explanation, streak, latest_counted)
    return RetrainDecision(bool(reasons), reasons, explanation, streak, latest_counted)
