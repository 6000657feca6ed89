"""The retraining trigger: a pure decision on drift verdicts, labels, schedule and cool-down."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from finsent.config import ConfigError, RetrainPolicyParams, from_dict
from finsent.monitoring.retrain_policy import WindowVerdict, decide_retrain

NOW = datetime(2024, 6, 10, 12, 0, tzinfo=timezone.utc)
P = RetrainPolicyParams(
    signals=["embeddings", "prediction"], min_signals=1, min_window_rows=100, confirm_windows=2, cooldown_hours=24,
    min_new_labelled_rows=0, new_labels_trigger_rows=1000,
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
