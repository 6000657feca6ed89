"""The retraining trigger: a pure decision on drift verdicts, labels, schedule, the latest window's
estimated and realised accuracy, and the cool-down (which a large drop overrides)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from finsent.config import ConfigError, RetrainPolicyParams, from_dict
from finsent.monitoring.retrain_policy import WindowPerformance, WindowVerdict, decide_retrain

NOW = datetime(2024, 6, 10, 12, 0, tzinfo=UTC)
P = RetrainPolicyParams(
    signals=["embeddings", "prediction"],
    min_signals=1,
    min_window_rows=100,
    confirm_windows=2,
    cooldown_hours=24,
    min_new_labelled_rows=0,
    new_labels_trigger_rows=1000,
    estimated_drop=0.05,
    override_drop=0.1,
    override_max_interval=0.08,
)


def window(days_ago: float, *signals: str, rows: int = 500) -> WindowVerdict:
    return WindowVerdict(window_end=NOW - timedelta(days=days_ago), rows=rows, signals_fired=tuple(signals))


def test_confirmed_drift_triggers_and_names_the_reason():
    history = [window(3), window(2, "embeddings"), window(1, "embeddings", "prediction")]
    got = decide_retrain(history, NOW, None, 0, P)
    assert got.should_retrain and got.reasons == ["drift"]
    assert got.drifted_windows == 2 and got.counted_signals == ["embeddings", "prediction"]


def test_one_drifted_window_is_not_confirmation():
    got = decide_retrain([window(2), window(1, "embeddings")], NOW, None, 0, P)
    assert not got.should_retrain and got.reasons == []
    assert got.drifted_windows == 1


def test_a_clean_window_breaks_the_streak_and_order_does_not_matter():
    history = [window(1, "embeddings"), window(3, "embeddings"), window(2)]  # latest drifted, one before clean
    assert not decide_retrain(history, NOW, None, 0, P).should_retrain
    confirmed = [window(1, "embeddings"), window(3), window(2, "prediction")]
    assert decide_retrain(confirmed, NOW, None, 0, P).should_retrain


def test_signals_outside_the_policy_do_not_count():
    history = [window(2, "text_descriptors", "text_content"), window(1, "text_descriptors")]
    assert not decide_retrain(history, NOW, None, 0, P).should_retrain


def test_min_signals_and_min_window_rows():
    two = RetrainPolicyParams(**{**P.__dict__, "min_signals": 2})
    history = [window(2, "embeddings", "prediction"), window(1, "embeddings")]
    assert not decide_retrain(history, NOW, None, 0, two).should_retrain
    small = [window(2, "embeddings", rows=50), window(1, "embeddings", rows=50)]
    assert not decide_retrain(small, NOW, None, 0, P).should_retrain


def test_windows_after_now_are_ignored():
    history = [window(2, "embeddings"), window(1, "embeddings"), window(-1)]
    assert decide_retrain(history, NOW, None, 0, P).should_retrain


def test_cool_down_holds_back_every_reason():
    history = [window(2, "embeddings"), window(1, "embeddings")]
    recent = NOW - timedelta(hours=5)
    got = decide_retrain(history, NOW, recent, 5000, P, scheduled=True)
    assert not got.should_retrain and got.reasons == []
    assert any("cool-down" in line for line in got.explanation)
    later = decide_retrain(history, NOW, NOW - timedelta(hours=25), 5000, P, scheduled=True)
    assert later.should_retrain and later.reasons == ["drift", "new_labels", "schedule"]


def test_new_labels_alone_and_their_minimum_for_drift():
    assert decide_retrain([], NOW, None, 1000, P).reasons == ["new_labels"]
    assert not decide_retrain([], NOW, None, 999, P).should_retrain
    never = RetrainPolicyParams(**{**P.__dict__, "new_labels_trigger_rows": None})
    assert not decide_retrain([], NOW, None, 10**6, never).should_retrain
    needs_labels = RetrainPolicyParams(**{**P.__dict__, "min_new_labelled_rows": 200})
    history = [window(2, "embeddings"), window(1, "embeddings")]
    assert not decide_retrain(history, NOW, None, 199, needs_labels).should_retrain
    assert decide_retrain(history, NOW, None, 200, needs_labels).reasons == ["drift"]


def test_schedule_is_a_reason_of_its_own():
    assert decide_retrain([], NOW, None, 0, P, scheduled=True).reasons == ["schedule"]


def test_naive_times_are_utc():
    history = [window(2, "embeddings"), window(1, "embeddings")]
    naive_now = NOW.replace(tzinfo=None)
    assert decide_retrain(history, naive_now, (NOW - timedelta(hours=1)).replace(tzinfo=None), 0, P).should_retrain is False


def test_policy_params_reject_unknown_signals():
    with pytest.raises(ConfigError, match="unknown"):
        from_dict(RetrainPolicyParams, {"signals": ["vibes"]})
    with pytest.raises(ConfigError):
        RetrainPolicyParams(confirm_windows=0)


# --- the latest window's accuracy -----------------------------------------------------------------


def performance(estimated: float | None = None, width: float = 0.04, realised: float | None = None, rows: int = 500) -> WindowPerformance:
    """A window of a champion whose test accuracy was 0.86 (the issue's MiniLM)."""
    low = high = None
    if estimated is not None:
        low, high = estimated - width / 2, estimated + width / 2
    return WindowPerformance(
        rows=rows, baseline_accuracy=0.86, estimate_method="doubly_robust", estimated_accuracy=estimated,
        estimated_low=low, estimated_high=high, realised_accuracy=realised, labelled_rows=4846 if realised is not None else 0,
    )  # fmt: skip


def test_an_estimated_drop_is_a_reason_with_its_own_threshold():
    fired = decide_retrain([], NOW, None, 0, P, performance=performance(estimated=0.80))  # 0.06 below
    assert fired.should_retrain and fired.reasons == ["estimated_drop"]
    assert any("0.800" in line and "doubly_robust" in line for line in fired.explanation)
    small = decide_retrain([], NOW, None, 0, P, performance=performance(estimated=0.83))  # 0.03 below
    assert not small.should_retrain and any("fires at 0.05" in line for line in small.explanation)
    assert not decide_retrain([], NOW, None, 0, P, performance=performance(estimated=0.80, rows=50)).should_retrain
    off = RetrainPolicyParams(**{**P.__dict__, "estimated_drop": None})
    assert not decide_retrain([], NOW, None, 0, off, performance=performance(estimated=0.60)).should_retrain
    needs_labels = RetrainPolicyParams(**{**P.__dict__, "min_new_labelled_rows": 200})
    assert not decide_retrain([], NOW, None, 10, needs_labels, performance=performance(estimated=0.80)).should_retrain
    no_baseline = WindowPerformance(rows=500, estimated_accuracy=0.5, estimated_low=0.48, estimated_high=0.52)
    assert not decide_retrain([], NOW, None, 0, P, performance=no_baseline).should_retrain


def test_the_cool_down_holds_a_small_estimated_drop_back():
    recent = NOW - timedelta(hours=2)
    got = decide_retrain([], NOW, recent, 0, P, performance=performance(estimated=0.80))
    assert not got.should_retrain and not got.cooldown_overridden
    assert any("held back by the cool-down" in line for line in got.explanation)


def test_a_realised_drop_past_the_override_threshold_overrides_the_cool_down():
    # The case: 4,846 newly labelled external rows on which the champion is 11 points worse,
    # the day it was trained.
    recent = NOW - timedelta(hours=2)
    history = [window(2, "performance"), window(1, "performance")]
    got = decide_retrain(history, NOW, recent, 4846, P, performance=performance(realised=0.748))
    assert got.should_retrain and got.cooldown_overridden
    assert got.reasons == ["new_labels", "accuracy_drop"]
    assert any("overridden" in line for line in got.explanation)
    smaller = decide_retrain(history, NOW, recent, 4846, P, performance=performance(realised=0.80))  # 0.06: not past 0.1
    assert not smaller.should_retrain and not smaller.cooldown_overridden
    never = RetrainPolicyParams(**{**P.__dict__, "override_drop": None})
    assert not decide_retrain(history, NOW, recent, 4846, never, performance=performance(realised=0.6)).should_retrain


def test_an_estimated_drop_overrides_the_cool_down_only_with_a_tight_interval():
    recent = NOW - timedelta(hours=2)
    tight = decide_retrain([], NOW, recent, 0, P, performance=performance(estimated=0.74, width=0.05))
    assert tight.should_retrain and tight.cooldown_overridden and tight.reasons == ["estimated_drop"]
    wide = decide_retrain([], NOW, recent, 0, P, performance=performance(estimated=0.74, width=0.12))
    assert not wide.should_retrain and any("too wide" in line for line in wide.explanation)
    # Outside the cool-down, the wide estimate still starts training on the estimated drop.
    assert decide_retrain([], NOW, None, 0, P, performance=performance(estimated=0.74, width=0.12)).reasons == ["estimated_drop"]


def test_drop_thresholds_are_checked():
    with pytest.raises(ConfigError, match="larger than"):
        from_dict(RetrainPolicyParams, {"estimated_drop": 0.1, "override_drop": 0.05})
    with pytest.raises(ConfigError, match="estimated_drop"):
        from_dict(RetrainPolicyParams, {"estimated_drop": 1.5})
    assert from_dict(RetrainPolicyParams, {"estimated_drop": None, "override_drop": None}).override_drop is None
