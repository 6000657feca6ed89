"""Posted news items: the batch-file rules answer each bad item with its reason, keys make retries
idempotent, and items the store already holds are not scored again."""

from __future__ import annotations

import threading
import uuid

import numpy as np

from finsent import utc
from finsent.config import MonitorParams
from finsent.monitoring import store
from finsent.service import ingest


def items() -> list[dict]:
    return [
        {"text": "$AAPL cuts guidance", "published_at": "2026-11-29T10:00Z", "id": "a"},
        {"text": "Microsoft beats estimates", "published_at": "2026-11-29", "ticker": None, "source": "wire", "id": None},
        {"text": "", "published_at": "2026-11-29"},
        {"text": "no time", "published_at": "whenever"},
        {"text": "$AAPL cuts guidance again", "published_at": "2026-11-29T11:00Z", "id": "a"},  # same id as item 0
        {"text": "x" * 6000, "published_at": "2026-11-29"},
    ]


def test_each_bad_item_has_its_reason_and_the_good_ones_are_kept():
    checked = ingest.check_items(items(), MonitorParams(), invalid={})
    assert checked.positions == [0, 1]
    assert checked.rejected == {2: "empty_text", 3: "bad_published_at", 4: "duplicate_in_request", 5: "text_too_long"}
    assert checked.keys[0] == "id:a" and checked.keys[1].startswith("sha256:")
    assert checked.frame["tickers"].tolist() == ["AAPL", "MSFT"]  # cashtag; company name


def test_the_content_key_changes_with_the_content_and_not_otherwise():
    base = {"text": "t", "published_at": "2026-11-29", "ticker": None, "source": None}
    assert ingest.item_key(base) == ingest.item_key(dict(base))
    assert ingest.item_key(base) != ingest.item_key({**base, "published_at": "2026-11-30"})
    assert ingest.item_key({**base, "id": "42"}) == "id:42"


def test_items_already_stored_are_answered_as_duplicates_without_scoring(tmp_path):
    engine = store.make_engine(f"sqlite:///{tmp_path}/p.db")
    p = MonitorParams()
    first = ingest.check_items(items()[:2], p)
    probs = np.tile([[0.7, 0.2, 0.1]], (2, 1))
    stored = ingest.store(engine, ingest.scored_frame(first.frame, probs), first.keys, 2, model_name="m", model_version="1")
    assert stored == first.keys

    again = ingest.check_items(items()[:2] + [{"text": "new one", "published_at": "2026-11-30", "id": "b"}], p)
    again = ingest.drop_known(again, store.known_news_keys(engine, again.keys))
    assert again.positions == [2] and again.known == {0: "id:a", 1: first.keys[1]}
    scored = ingest.scored_frame(again.frame, np.array([[0.1, 0.8, 0.1]]))
    stored = ingest.store(engine, scored, again.keys, 3, model_name="m", model_version="1")
    results = ingest.item_results(items()[:2] + [{}], again, scored, stored, "1")
    assert [r["status"] for r in results] == ["duplicate", "duplicate", "stored"]
    assert results[2]["label"] == "bullish" and results[2]["model_version"] == "1"
    assert len(store.read_predictions(engine)) == 3


def test_a_new_store_opened_by_many_threads_at_once_is_created_once(tmp_path):
    url = f"sqlite:///{tmp_path}/fresh.db"
    errors: list[BaseException] = []

    def open_it():
        try:
            store.make_engine(url)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    meta = store.BatchMeta(uuid.uuid4().hex, "f", "0" * 64, 1, 0, "m", "1", utc.now())
    engine = store.make_engine(url)
    checked = ingest.check_items(items()[:1], MonitorParams())
    assert store.append_news(engine, ingest.scored_frame(checked.frame, np.array([[0.2, 0.2, 0.6]])), checked.keys, meta) == ["id:a"]
