"""Which stored texts are on offer for labelling, and what an export writes and records, on a real
SQLite store (no model: the champion's part is the integration test's)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from finsent.labelling import export as ex
from finsent.labelling.keys import text_key
from finsent.labelling.select import Selection
from finsent.monitoring.store import BatchMeta, append_batch, label_tasks, make_engine


def stored(engine, texts: list[str], labels: list[int] | None = None, batch: str = "b1") -> None:
    n = len(texts)
    rows = pd.DataFrame(
        {
            "published_at": [pd.Timestamp("2026-11-01", tz="UTC") + pd.Timedelta(hours=i) for i in range(n)],
            "text": texts,
            "tickers": "ACME",
            "source": "wire",
            "label": labels or [-1] * n,
            "predicted": 2,
            "p_bearish": 0.2,
            "p_bullish": 0.3,
            "p_neutral": 0.5,
        }
    )
    meta = BatchMeta(batch, f"{batch}.csv", batch.ljust(64, "0"), n, 0, "finsent-sentiment", "1", datetime(2026, 11, 2, tzinfo=UTC))
    append_batch(engine, rows, meta)


@pytest.fixture
def engine(tmp_path):
    return make_engine(f"sqlite:///{tmp_path / 'store.db'}")


def test_candidates_are_recent_unlabelled_new_texts_each_once(engine):
    stored(engine, ["old news", "Acme rises", "Acme falls", "ACME  rises", "labelled in data", "exported before"])
    stored(engine, ["carries its label"], labels=[1], batch="b2")
    chosen = pd.DataFrame({"id": [6], "key": [text_key("exported before")], "strategy": ["margin"], "score": [0.1]})
    champion = SimpleNamespace(name="finsent-sentiment", version="1")
    assert ex.record(engine, chosen, champion, ex.Path("/tmp/x")) == 1
    assert ex.record(engine, chosen, champion, ex.Path("/tmp/y")) == 0  # once, whoever records it again

    got = ex.read_candidates(engine, {text_key("Labelled in  DATA")}, max_candidates=10)
    assert got.frame["text"].tolist() == ["ACME  rises", "Acme falls", "old news"]  # newest first; "Acme rises" is a repeat
    assert (got.rows_read, got.already_exported, got.already_labelled, got.repeated) == (6, 1, 1, 1)
    assert got.frame["key"].tolist() == [text_key(t) for t in got.frame["text"]]
    capped = ex.read_candidates(engine, set(), max_candidates=2)
    assert len(capped.frame) == 2 and capped.rows_read == 3  # it stops reading once it has enough


def test_the_files_and_the_folder_rule(tmp_path):
    candidates = pd.DataFrame(
        {
            "id": [7, 8, 9],
            "published_at": [datetime(2026, 11, 1, 9)] * 3,
            "text": ["a rises", "b falls", "c holds"],
            "tickers": ["A", "", "C"],
            "key": [text_key(t) for t in ("a rises", "b falls", "c holds")],
        }
    )
    probs = np.array([[0.1, 0.8, 0.1], [0.5, 0.3, 0.2], [0.3, 0.3, 0.4]])
    selection = Selection("margin", "margin", np.array([9, 8]), np.array([0.1, 0.2]))
    chosen = ex.chosen_rows(candidates, probs, selection)
    assert chosen["text"].tolist() == ["c holds", "b falls"] and chosen["predicted"].tolist() == ["neutral", "bearish"]
    assert chosen["confidence"].tolist() == [0.4, 0.5] and chosen["published_at"].tolist() == ["2026-11-01T09:00:00Z"] * 2

    out = tmp_path / "export"
    paths = ex.write_files(ex.check_out_dir(out), chosen, "finsent-sentiment v1")
    assert sorted(p.rsplit("/", 1)[1] for p in paths.values()) == sorted(ex.EXPORT_FILES)
    tasks = json.loads((out / "tasks.json").read_text())
    assert [t["predictions"][0]["score"] for t in tasks] == [0.4, 0.5]
    with pytest.raises(ex.LabellingError, match="already holds an export"):
        ex.check_out_dir(out)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ex.LabellingError, match="is a file"):
        ex.check_out_dir(tmp_path / "a-file")

    # A failed write leaves none of the files it wrote: here tasks.json cannot be replaced (a folder
    # is in its way), so the config and the CSV written before it go again.
    (tmp_path / "second" / "tasks.json").mkdir(parents=True)
    with pytest.raises(OSError):
        ex.write_files(tmp_path / "second", chosen, "v")
    assert [p.name for p in (tmp_path / "second").iterdir()] == ["tasks.json"]


def test_record_keeps_each_text_once(engine):
    chosen = pd.DataFrame({"id": [1, 2], "key": ["sha256:a", "sha256:b"], "strategy": "diverse", "score": [0.5, 0.25]})
    champion = SimpleNamespace(name="m", version="3")
    assert ex.record(engine, chosen, champion, ex.Path("/out")) == 2
    with engine.connect() as conn:
        rows = conn.execute(select(label_tasks)).mappings().all()
    assert {r["text_key"]: (r["strategy"], r["score"], r["model_version"], r["prediction_id"]) for r in rows} == {
        "sha256:a": ("diverse", 0.5, "3", 1),
        "sha256:b": ("diverse", 0.25, "3", 2),
    }
    assert ex.exported_keys(engine) == {"sha256:a", "sha256:b"}
