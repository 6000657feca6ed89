"""Reading news batches, scoring them and the predictions store (real SQLite through SQLAlchemy; the store
tests again on PostgreSQL: tests/integration/test_store_postgresql.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import event, func, select

from finsent.config import MonitorParams, TrainParams
from finsent.data.frames import DataError
from finsent.monitoring import batch as batch_mod
from finsent.monitoring.batch import check_batch, extract_tickers, read_batch, score_frame
from finsent.monitoring.store import (
    BatchMeta,
    DuplicateBatchError,
    StoreError,
    append_batch,
    batches,
    count_labelled_since,
    make_engine,
    news_for_training,
    predictions,
    read_batches,
    read_predictions,
    recent_news_texts,
    window_batches,
)
from finsent.training.score import Scorer
from testkit.tiny_bert import minilm_tokenizer, tiny_bert

P = MonitorParams(insert_chunk_rows=2)


@pytest.fixture(scope="module")
def tiny_scorer() -> Scorer:
    tokenizer = minilm_tokenizer()
    model = tiny_bert(tokenizer, max_position_embeddings=512)  # the transformers default
    return Scorer(tokenizer, model, max_length=32, batch_size=4, device="cpu")


@pytest.fixture(params=["sqlite"])
def engine(tmp_path):
    """The store on the default SQLite. (The same tests on PostgreSQL, ``monitor.store_url`` at scale:
    tests/integration/test_store_postgresql.py.)"""
    return make_engine(f"sqlite:///{tmp_path / 'sub' / 'predictions.db'}")


def scored_rows(n: int = 5) -> pd.DataFrame:
    probs = np.tile([0.2, 0.7, 0.1], (n, 1))
    return pd.DataFrame(
        {
            "published_at": pd.date_range("2024-05-01 09:00", periods=n, freq="12h", tz="UTC"),
            "text": [f"$AAPL headline {i}" for i in range(n)],
            "tickers": ["AAPL"] * n,
            "source": ["rss"] * (n - 1) + [None],
            "label": [1, -1, 0, -1, 2][:n] + [-1] * max(0, n - 5),
            "predicted": [1] * n,
            "p_bearish": probs[:, 0],
            "p_bullish": probs[:, 1],
            "p_neutral": probs[:, 2],
        }
    )


def meta(sha: str = "a" * 64, batch_id: str = "b1") -> BatchMeta:
    return BatchMeta(
        batch_id=batch_id,
        file="news.csv",
        sha256=sha,
        rows_in=6,
        rows_skipped=1,
        model_name="finsent-sentiment",
        model_version="3",
        scored_at=datetime(2024, 5, 3, tzinfo=UTC),
    )


def table_counts(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(batches)).scalar_one(),
            conn.execute(select(func.count()).select_from(predictions)).scalar_one(),
        )


# --- store ----------------------------------------------------------------------------------------


def test_append_and_read_back(engine):
    assert append_batch(engine, scored_rows(), meta(), chunk_rows=2) == 5
    df = read_predictions(engine)
    assert len(df) == 5
    assert df["label"].tolist() == [1, -1, 0, -1, 2]
    assert str(df["published_at"].dt.tz) == "UTC"
    assert df["published_at"].iloc[0] == pd.Timestamp("2024-05-01 09:00", tz="UTC")
    assert set(df["model_version"]) == {"3"} and set(df["batch_id"]) == {"b1"}
    assert df["source"].iloc[-1] is None
    assert np.allclose(df[["p_bearish", "p_bullish", "p_neutral"]].to_numpy(), [0.2, 0.7, 0.1])
    stored = read_batches(engine).iloc[0]
    assert (stored["rows_in"], stored["rows_scored"], stored["rows_skipped"]) == (6, 5, 1)


def test_recent_news_texts_are_the_newest_oldest_first_and_read_only_when_training_wants_them(engine, tmp_path):
    append_batch(engine, scored_rows(), meta())
    assert recent_news_texts(engine, 3) == ["$AAPL headline 2", "$AAPL headline 3", "$AAPL headline 4"]
    assert recent_news_texts(engine, 100) == [f"$AAPL headline {i}" for i in range(5)]
    missing = MonitorParams(store_url=f"sqlite:///{tmp_path / 'never' / 'created.db'}")
    assert news_for_training(TrainParams(), missing, tmp_path) is None  # TAPT and self-training off: no store opened
    assert not (tmp_path / "never").exists()


def test_read_predictions_date_range_is_half_open_and_utc(engine):
    append_batch(engine, scored_rows(), meta())
    # 09:00, 21:00 on May 1; 09:00, 21:00 on May 2; 09:00 May 3 (UTC)
    got = read_predictions(engine, "2024-05-01T21:00:00Z", datetime(2024, 5, 3, 9, 0))
    assert got["published_at"].dt.strftime("%d %H").tolist() == ["01 21", "02 09", "02 21"]
    # a +02:00 bound is the same instant as 07:00 UTC
    assert len(read_predictions(engine, start="2024-05-03T11:00:00+02:00")) == 1
    assert read_predictions(engine, batch_id="nope").empty


def test_same_file_twice_is_refused_and_store_unchanged(engine):
    append_batch(engine, scored_rows(), meta())
    with pytest.raises(DuplicateBatchError, match="already scored"):
        append_batch(engine, scored_rows(), meta(batch_id="b2"))
    assert table_counts(engine) == (1, 5)


def test_failure_in_the_middle_of_append_leaves_store_unchanged(engine):
    append_batch(engine, scored_rows(), meta())
    inserts = {"n": 0}

    def fail_on_second_chunk(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO predictions"):
            inserts["n"] += 1
            if inserts["n"] == 2:  # the batch row and the first chunk are already in
                raise RuntimeError("connection lost")

    event.listen(engine, "before_cursor_execute", fail_on_second_chunk)
    try:
        with pytest.raises(RuntimeError, match="connection lost"):
            append_batch(engine, scored_rows(), meta(sha="c" * 64, batch_id="b2"), chunk_rows=2)
    finally:
        event.remove(engine, "before_cursor_execute", fail_on_second_chunk)
    assert inserts["n"] == 2
    assert table_counts(engine) == (1, 5)
    assert set(read_predictions(engine)["batch_id"]) == {"b1"}


def test_constraint_violation_in_last_row_rolls_back_the_whole_batch(engine):
    rows = scored_rows()
    rows.loc[4, "p_bullish"] = 1.5
    with pytest.raises(StoreError, match="nothing written"):
        append_batch(engine, rows, meta(), chunk_rows=2)
    assert table_counts(engine) == (0, 0)


def test_missing_columns_and_empty_rows_are_clear_errors(engine):
    with pytest.raises(StoreError, match=r"lack column\(s\) \['predicted'\]"):
        append_batch(engine, scored_rows().drop(columns="predicted"), meta())
    with pytest.raises(StoreError, match="no rows"):
        append_batch(engine, scored_rows().iloc[0:0], meta())


def test_count_labelled_since(engine):
    append_batch(engine, scored_rows(), meta())
    assert count_labelled_since(engine, None) == 3
    assert count_labelled_since(engine, datetime(2024, 5, 2, tzinfo=UTC)) == 3
    assert count_labelled_since(engine, datetime(2024, 5, 4, tzinfo=UTC)) == 0


# --- reading and scoring batches -----------------------------------------------------------------


def test_extract_tickers_from_column_cashtags_and_company_names():
    companies = {"apple": "AAPL", "tesla": "TSLA", "bank of america": "BAC"}
    assert extract_tickers("$msft and Apple rally; Bank of America flat", "nvda; $goog", companies) == [
        "AAPL",
        "BAC",
        "GOOG",
        "MSFT",
        "NVDA",
    ]
    assert extract_tickers("pineapple prices and teslas", None, companies) == []  # whole words only
    assert extract_tickers("$BRK.B up", None, {}) == ["BRK.B"]


def test_check_batch_counts_and_skips_invalid_rows():
    raw = pd.DataFrame(
        {
            "text": ["$AAPL beats", "  ", "Tesla recalls", "fine", "x" * 6000, "ok"],
            "published_at": ["2024-05-01T10:00:00Z", "2024-05-01", "yesterday", "2024-05-02", "2024-05-02", "2024-05-02T12:00:00+02:00"],
            "label": ["bullish", "", "0", "maybe", "1", None],
            "source": ["rss", None, None, None, None, "wire"],
        }
    )
    got = check_batch(raw, MonitorParams(max_text_chars=5000))
    assert got.rows_in == 6 and got.rows_skipped == 4
    assert got.skipped == {"empty_text": 1, "text_too_long": 1, "bad_published_at": 1, "bad_label": 1}
    assert got.examples["bad_published_at"] == [3]
    assert got.frame["text"].tolist() == ["$AAPL beats", "ok"]
    assert got.frame["label"].tolist() == [1, -1]
    assert got.frame["published_at"].tolist() == [pd.Timestamp("2024-05-01 10:00", tz="UTC"), pd.Timestamp("2024-05-02 10:00", tz="UTC")]
    assert got.frame["tickers"].tolist() == ["AAPL", ""]
    assert got.frame["source"].tolist() == ["rss", "wire"]


def test_a_text_with_a_nul_byte_is_skipped_with_its_reason_not_cut(tmp_path):
    path = tmp_path / "news.csv"
    path.write_bytes(b"text,published_at\nAcme soars\x00 after the probe,2024-05-01\nAcme falls,2024-05-01\n")
    got = read_batch(path, MonitorParams())
    assert got.skipped == {"control_characters": 1} and got.examples["control_characters"] == [1]
    assert got.frame["text"].tolist() == ["Acme falls"]


def test_read_batch_jsonl_and_whole_file_errors(tmp_path):
    good = tmp_path / "news.jsonl"
    good.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"text": "Microsoft up", "published_at": "2024-05-01T10:00:00Z", "ticker": "msft", "label": 1},
                {"text": "no time", "published_at": None},
            ]
        )
    )
    got = read_batch(good, P)
    assert got.frame["tickers"].tolist() == ["MSFT"] and got.skipped == {"bad_published_at": 1}
    no_time = tmp_path / "no_time.csv"
    no_time.write_text("text,label\nhello,1\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['published_at'\]"):
        read_batch(no_time, P)
    all_bad = tmp_path / "all_bad.csv"
    all_bad.write_text("text,published_at\n,2024-05-01\nhello,never\n")
    with pytest.raises(DataError, match="none of its 2 rows can be scored"):
        read_batch(all_bad, P)


class _WrongShapeScorer:
    def predict_proba(self, texts):
        return np.full((len(texts), 2), 0.5)


def test_score_frame_adds_probabilities_and_rejects_wrong_shapes(tiny_scorer):
    frame = pd.DataFrame({"text": ["$AAPL beats estimates", "a much longer headline about markets and rates", "x"]})
    out = score_frame(tiny_scorer, frame)
    probs = out[["p_bearish", "p_bullish", "p_neutral"]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert out["predicted"].tolist() == probs.argmax(axis=1).tolist()
    # the scorer sorts by length internally; results must still be in input order
    single = score_frame(tiny_scorer, frame.iloc[[1]])
    assert np.allclose(single[["p_bearish", "p_bullish", "p_neutral"]].to_numpy(), probs[[1]], atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        score_frame(_WrongShapeScorer(), frame)


def test_two_runs_racing_on_one_file_store_it_once_and_both_succeed(tmp_path, engine):
    """Both pass the 'already scored?' check before either writes: the loser's transaction is refused
    by the store and it reports the file as already scored, a no-op, not an error."""
    import threading

    import numpy as np

    path = tmp_path / "news.csv"
    path.write_text("text,published_at\nAcme beats,2024-05-01\nAcme misses,2024-05-02\n")
    both_checked = threading.Barrier(2, timeout=30)

    class SlowScorer:
        def predict_proba(self, texts):
            both_checked.wait()  # neither writes until both have found the file unscored
            return np.full((len(texts), 3), 1 / 3)

    results = []
    runs = [
        threading.Thread(target=lambda v=v: results.append(batch_mod.run(P, SlowScorer(), path, engine, model_name="m", model_version=v)))
        for v in ("1", "2")
    ]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(timeout=60)
    assert sorted(r.status for r in results) == ["already_scored", "scored"]
    assert table_counts(engine) == (1, 2)


def test_run_scores_a_file_once(tmp_path, engine, tiny_scorer):
    path = tmp_path / "news.csv"
    path.write_text(
        "text,published_at,ticker,source,label\n"
        "$AAPL beats estimates,2024-05-01T10:00:00Z,,rss,bullish\n"
        "Tesla recalls cars,2024-05-01T11:00:00Z,,rss,\n"
        ",2024-05-01T12:00:00Z,,rss,\n"
        "NVIDIA guides lower,2024-05-02,NVDA,wire,0\n"
    )
    first = batch_mod.run(P, tiny_scorer, path, engine, model_name="finsent-sentiment", model_version="7")
    assert (first.status, first.rows_in, first.rows_scored, first.rows_skipped) == ("scored", 4, 3, 1)
    assert first.skipped == {"empty_text": 1}
    stored = read_predictions(engine)
    assert stored["tickers"].tolist() == ["AAPL", "TSLA", "NVDA"]
    assert stored["label"].tolist() == [1, -1, 0]
    assert set(stored["model_version"]) == {"7"}
    again = batch_mod.run(P, tiny_scorer, path, engine, model_name="finsent-sentiment", model_version="8")
    assert again.status == "already_scored" and again.batch_id == first.batch_id
    assert "already scored" in again.message
    assert table_counts(engine) == (1, 3)


# --- which stored batches wait for a monitoring window ----------------------------------------------


def verdict(drift: bool = False) -> dict:
    return {"drift": drift, "signals_fired": ["prediction"] if drift else []}


def record(engine, batch_ids: list[str], drift: bool = False) -> int:
    from finsent.monitoring import history

    return history.record_window(
        engine, window_end=datetime(2024, 5, 4, tzinfo=UTC), batch_ids=batch_ids, rows=5, verdict=verdict(drift),
        model_name="finsent-sentiment", model_version="3", verdict_path=None,
    )  # fmt: skip


def test_stored_batches_wait_for_a_window_oldest_first_until_one_completes(engine):
    from finsent.monitoring import history

    assert history.pending_batch_ids(engine) == []
    append_batch(engine, scored_rows(), meta(batch_id="late"))
    append_batch(engine, scored_rows(), replace(meta(sha="b" * 64, batch_id="early"), scored_at=datetime(2024, 5, 1, tzinfo=UTC)))
    assert history.pending_batch_ids(engine) == ["early", "late"]
    history.close_batches(engine, ["early"], "artifacts/monitoring/w1")
    history.close_batches(engine, ["early"], "artifacts/monitoring/w2")  # an overlapping run completes too: the first mark stays
    assert history.pending_batch_ids(engine) == ["late"]
    with engine.connect() as conn:
        assert conn.execute(select(window_batches.c.out_dir)).scalars().all() == ["artifacts/monitoring/w1"]


def test_a_store_made_before_windows_were_recorded_counts_its_batches_as_monitored(engine):
    """Else the first window after an upgrade would be the store's whole history."""
    from finsent.monitoring import history

    append_batch(engine, scored_rows(), meta(batch_id="old"))
    window_batches.drop(engine)  # the schema of a store written by an earlier finsent
    reopened = make_engine(engine.url.render_as_string(hide_password=False))
    assert history.pending_batch_ids(reopened) == []
    with reopened.connect() as conn:
        assert conn.execute(select(window_batches.c.batch_id, window_batches.c.out_dir)).all() == [("old", None)]
    append_batch(reopened, scored_rows(), meta(sha="c" * 64, batch_id="new"))
    assert history.pending_batch_ids(reopened) == ["new"]


def test_a_window_retaken_after_a_failed_run_replaces_its_drift_record_under_the_same_id(engine):
    """Counted twice, one window could confirm drift alone; its drift alert is keyed by the id."""
    from finsent.monitoring import history

    for i, batch_id in enumerate(["a", "b", "c"]):
        append_batch(
            engine, scored_rows(), replace(meta(sha=str(i) * 64, batch_id=batch_id), scored_at=datetime(2024, 5, 1 + i, tzinfo=UTC))
        )
    failed = record(engine, ["a"], drift=True)  # its run failed after recording: "a" is still pending
    retaken = record(engine, ["a", "b"])
    assert retaken == failed and [w.signals_fired for w in history.read_windows(engine)] == [()]
    history.close_batches(engine, ["a", "b"], "w")
    assert record(engine, ["c"]) != failed  # a new window once the last one completed
    assert len(history.read_windows(engine)) == 2
