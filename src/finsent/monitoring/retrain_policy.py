"""Whether monitoring should start the training flow: a pure decision on the recent drift verdicts.

Retraining fires for one of these reasons:
- ``drift``: the last ``confirm_windows`` windows each had at least ``min_window_rows`` rows and at least
  ``min_signals`` of the counted signals fired (one noisy window is not enough), and at least
  ``min_new_labelled_rows`` newly labelled rows exist;
- ``new_labels``: at least ``new_labels_trigger_rows`` newly labelled rows, drift or not;
- ``schedule``: the flow's schedule says so (the flow passes ``scheduled=True``);
- ``estimated_drop``: the latest window (at least ``min_window_rows`` rows) has an estimated accuracy
  (``finsent.monitoring.estimate``, the method ``estimate.chosen``) at least ``estimated_drop`` below the
  champion's test accuracy, and at least ``min_new_labelled_rows`` newly labelled rows exist: labels
  arrive late or never, and the estimate is what says the model got worse before they do;
- ``accuracy_drop``: the latest window's realised accuracy on its labelled rows (the drift stage's
  performance signal, so at least ``drift.min_labelled_rows`` of them) is at least ``override_drop``
  below the champion's test accuracy.
Any of them is held back during the cool-down after the last retrain, unless the drop is large: a
realised drop of at least ``override_drop``, or an estimated one of at least ``override_drop`` whose
interval is no wider than ``override_max_interval``, overrides the cool-down (a model 11 points worse
should not wait a day because it was trained this morning). Firing only starts training: the new model
is promoted by the registry gate or not at all, so drift alone never promotes anything.
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
class WindowPerformance:
    """The latest window's accuracy as the policy sees it: estimated without labels, realised with them."""

    rows: int
    baseline_accuracy: float | None = None  # the champion's accuracy on the test set, from its training run
    estimate_method: str | None = None
    estimated_accuracy: float | None = None
    estimated_low: float | None = None  # the estimate's interval
    estimated_high: float | None = None
    realised_accuracy: float | None = None  # on the window's labelled rows, when there were enough
    labelled_rows: int = 0

    @property
    def estimated_drop(self) -> float | None:
        if self.baseline_accuracy is None or self.estimated_accuracy is None:
            return None
        return self.baseline_accuracy - self.estimated_accuracy

    @property
    def realised_drop(self) -> float | None:
        if self.baseline_accuracy is None or self.realised_accuracy is None:
            return None
        return self.baseline_accuracy - self.realised_accuracy

    @property
    def interval_width(self) -> float | None:
        if self.estimated_low is None or self.estimated_high is None:
            return None
        return self.estimated_high - self.estimated_low


@dataclass(frozen=True)
class RetrainDecision:
    should_retrain: bool
    reasons: list[str] = field(default_factory=list)  # drift | new_labels | schedule | estimated_drop | accuracy_drop
    explanation: list[str] = field(default_factory=list)  # why, or why not, in words
    drifted_windows: int = 0  # consecutive drifted windows, counting back from the latest
    counted_signals: list[str] = field(default_factory=list)  # counted signals fired in the latest window
    cooldown_overridden: bool = False  # a large drop started training within the cool-down


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
    performance: WindowPerformance | None = None,
) -> RetrainDecision:
    """Decide from the window verdicts (any order; only those up to ``now`` count) and the latest
    window's ``performance`` (estimated and realised accuracy). Naive times are UTC."""
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
    override = False
    if performance is not None:
        override = _performance_reasons(performance, new_labelled_rows, p, reasons, explanation)

    if reasons and last_retrain_at is not None:
        ready_at = utc.aware(last_retrain_at) + timedelta(hours=p.cooldown_hours)
        if now < ready_at:
            if override:
                explanation.append(f"the cool-down until {ready_at.isoformat()} is overridden by the accuracy drop")
                return RetrainDecision(True, reasons, explanation, streak, latest_counted, cooldown_overridden=True)
            explanation.append(f"held back by the cool-down until {ready_at.isoformat()} (reasons: {reasons})")
            return RetrainDecision(False, [], explanation, streak, latest_counted)
    return RetrainDecision(bool(reasons), reasons, explanation, streak, latest_counted)


def _performance_reasons(
    w: WindowPerformance, new_labelled_rows: int, p: RetrainPolicyParams, reasons: list[str], explanation: list[str]
) -> bool:
    """Add the ``estimated_drop`` and ``accuracy_drop`` reasons the latest window earns; True when its
    drop is large enough to override the cool-down."""
    override = False
    realised = w.realised_drop
    if realised is not None and p.override_drop is not None and realised >= p.override_drop:
        reasons.append("accuracy_drop")
        explanation.append(
            f"realised accuracy {w.realised_accuracy:.3f} on {w.labelled_rows} labelled rows is {realised:.3f} below "
            f"the champion's {w.baseline_accuracy:.3f} (override at {p.override_drop})"
        )
        override = True
    estimated = w.estimated_drop
    if estimated is None or p.estimated_drop is None:
        return override
    said = (
        f"estimated accuracy {w.estimated_accuracy:.3f} [{w.estimated_low:.3f}, {w.estimated_high:.3f}] ({w.estimate_method}) "
        f"is {estimated:+.3f} below the champion's {w.baseline_accuracy:.3f}"
    )
    if estimated < p.estimated_drop:
        explanation.append(f"{said} (fires at {p.estimated_drop})")
        return override
    if w.rows < p.min_window_rows:
        explanation.append(f"{said}, but the window has {w.rows} rows (needs {p.min_window_rows})")
        return override
    if new_labelled_rows < p.min_new_labelled_rows:
        explanation.append(f"{said}, but only {new_labelled_rows} new labelled rows (needs {p.min_new_labelled_rows})")
        return override
    reasons.append("estimated_drop")
    explanation.append(f"{said} (fires at {p.estimated_drop})")
    width = w.interval_width
    if p.override_drop is not None and estimated >= p.override_drop:
        if width is not None and width <= p.override_max_interval:
            override = True
            explanation.append(
                f"an estimated drop past {p.override_drop} with an interval {width:.3f} wide (at most {p.override_max_interval})"
            )
        else:
            explanation.append(f"the estimated drop passes {p.override_drop} but its interval is too wide to override the cool-down")
    return override
