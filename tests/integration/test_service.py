"""`finsent api` as users run it: a real uvicorn process on loopback over a real MLflow registry (the tiny
random BERT registered as versions) and a SQLite predictions store, with a webhook receiver that fails on
purpose. Scoring, ingest, index, alerts and their delivery, limits, the token, metrics, and following the
champion through a promotion, a rollback and a version that cannot load, under load, without an error."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from finsent import utc
from finsent.config import MonitorParams
from finsent.data import versioning
from finsent.monitoring import store
from testkit import registry_synthetic as rs
from testkit.live_api import READY_TIMEOUT_S, Api
from testkit.local_services import wait_for
from testkit.webhook_receiver import Receiver

pytestmark = pytest.mark.integration

TOKEN = "s3cret-test-token"
MAX_LOAD_REQUESTS = 5000  # the load threads stop at this many requests or when told, whichever first


@pytest.fixture
def receiver():
    r = Receiver(fail_first=3).start()  # down for the first round of tries
    yield r
    r.stop()


@pytest.fixture
def api(registered, receiver):
    webhooks = json.dumps(
        [
            {"url": receiver.url(), "name": "ops", "format": "json"},
            {"url": receiver.url("/slack"), "name": "chat", "format": "slack", "events": ["drift"]},
        ]
    )
    server = Api(
        registered,
        f"alerts.webhooks={webhooks}",
        "alerts.attempts=2",
        "alerts.backoff_s=0.05",
        "alerts.redeliver_every_s=0.5",
        "monitor.alert_min_count=3",
        "service.max_texts_per_request=50",
        "service.max_body_bytes=20000",
        "service.precision=bf16",  # on any CPU: the setting reaches the scorer the follower loads
        env={"FINSENT_API_TOKEN": TOKEN},
    )
    yield server
    server.stop()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def seed_bearish_day(project: Path, day: str, ticker: str, rows: int = 5) -> None:
    """An earlier day of the ticker in the store, strongly bearish: the baseline an ingest is compared with."""
    engine = store.open_store(MonitorParams(), project)
    frame = pd.DataFrame(
        {
            "published_at": [pd.Timestamp(day, tz="UTC")] * rows,
            "text": [f"{ticker} earlier headline {i}" for i in range(rows)],
            "tickers": [ticker] * rows,
            "source": ["seed"] * rows,
            "label": [-1] * rows,
            "predicted": [0] * rows,
            "p_bearish": [0.9] * rows,
            "p_bullish": [0.05] * rows,
            "p_neutral": [0.05] * rows,
        }
    )
    meta = store.BatchMeta(
        batch_id="seed",
        file="seed.csv",
        sha256="5" * 64,
        rows_in=rows,
        rows_skipped=0,
        model_name="m",
        model_version="0",
        scored_at=utc.now(),
    )
    store.append_batch(engine, frame, meta)


def test_scoring_ingest_index_alerts_limits_and_metrics(api, registered, receiver):
    seed_bearish_day(registered, "2026-11-28", "ACME")
    assert api.ready()["model"]["version"] == "1" and api.ready()["model"]["precision"] == "bf16"

    # Scoring: one text or many; nothing stored.
    one = api.post("/v1/predict", {"text": "Acme shares fall after weak guidance"}).json()
    assert one["model_version"] == "1" and len(one["predictions"]) == 1
    assert abs(sum(one["predictions"][0]["probabilities"].values()) - 1) < 1e-4
    many = api.post("/v1/predict", {"texts": ["a b c", "Acme beats estimates", "Acme holds meeting"]}).json()
    assert [p["model_version"] for p in many["predictions"]] == ["1"] * 3

    # Ingest needs the token; the valid items are kept, each bad one says why.
    items = [{"text": f"$ACME news item {i}", "published_at": "2026-11-29T09:00:00Z", "id": f"n{i}"} for i in range(4)]
    bad = [
        {"text": "", "published_at": "2026-11-29"},
        {"text": "no time", "published_at": "yesterday-ish"},
        {"text": 7, "published_at": "2026-11-29"},
    ]
    assert api.post("/v1/news", {"items": items}).status_code == 401
    assert api.post("/v1/news", {"items": items}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    posted = api.post("/v1/news", {"items": items + bad}, headers=AUTH)
    assert posted.status_code == 200, posted.text
    body = posted.json()
    assert (body["stored"], body["duplicates"], body["rejected"]) == (4, 0, 3)
    assert [i["reason"] for i in body["items"][4:]] == ["empty_text", "bad_published_at", "invalid: text: Input should be a valid string"]
    assert body["items"][0]["tickers"] == ["ACME"]

    # ACME moved from about -0.85 to about 0: one alert for that ticker and day, recorded once.
    assert [a["key"] for a in body["alerts"]] == ["sentiment:ACME:2026-11-29"]
    again = api.post(
        "/v1/news", {"items": items + [{"text": "$ACME one more", "published_at": "2026-11-29T10:00Z", "id": "n9"}]}, headers=AUTH
    ).json()
    assert (again["stored"], again["duplicates"]) == (1, 4) and again["alerts"] == []  # a retry stores nothing twice
    engine = store.open_store(MonitorParams(), registered)
    assert len(store.read_predictions(engine, batch_id=None)) == 5 + 5  # seed + five distinct items

    # The webhook failed the first round (3 failures over 2 tries each): the alert waited in the store
    # and was delivered by a later round; the slack webhook takes drift only and got nothing.
    wait_for(lambda: len(receiver.posts) >= 1, 60, "the alert delivered after the receiver recovered", every_s=0.25)
    time.sleep(1.5)  # further rounds must not post it again
    assert [(p.path, p.body["key"]) for p in receiver.posts] == [("/hook", "sentiment:ACME:2026-11-29")]
    recorded = api.get("/v1/alerts").json()["alerts"]
    assert len(recorded) == 1 and recorded[0]["deliveries"][0]["status"] == "delivered"
    assert recorded[0]["deliveries"][0]["attempts"] >= 3

    index = api.get("/v1/index", params={"ticker": "ACME", "start": "2026-11-20", "end": "2026-12-01"}).json()
    assert [(r["day"], r["count"]) for r in index["series"]] == [("2026-11-28", 5), ("2026-11-29", 5)]
    assert index["series"][0]["net_sentiment"] < -0.8

    # Limits: clear 413/422 answers, never a traceback.
    answers = [
        api.post("/v1/predict", {"texts": ["x"] * 51}),
        api.post("/v1/predict", {"text": "y" * 6000}),
        httpx.post(
            f"{api.url}/v1/predict",
            content=b'{"texts": ["' + b"z" * 30000 + b'"]}',
            headers={"content-type": "application/json"},
            timeout=30,
        ),
        api.post("/v1/predict", {"texts": "not a list"}),
        httpx.post(f"{api.url}/v1/predict", content=b"{broken", headers={"content-type": "application/json"}, timeout=30),
        api.post("/v1/predict", {}),
    ]
    assert [a.status_code for a in answers] == [413, 413, 413, 422, 422, 422]
    for answer in answers:
        assert "Traceback" not in answer.text and answer.json()["detail"]
    assert "max_texts_per_request" in answers[0].json()["detail"] and "max_body_bytes" in answers[2].json()["detail"]

    metrics = api.get("/metrics").text
    assert 'finsent_model_info{name="finsent-sentiment",version="1"} 1.0' in metrics
    assert 'finsent_requests_total{method="POST",route="/v1/predict",status="413"} 2.0' in metrics
    assert 'finsent_news_items_total{status="stored"} 5.0' in metrics
    assert "finsent_batch_texts_bucket" in metrics and "finsent_queue_texts" in metrics
    assert set(api.get("/openapi.json").json()["paths"]) >= {
        "/v1/predict",
        "/v1/news",
        "/v1/index",
        "/v1/alerts",
        "/healthz",
        "/readyz",
        "/metrics",
    }


def load(api: Api, stop: threading.Event, seen: dict, errors: list) -> None:
    """Post one headline at a time until told to stop (bounded by MAX_LOAD_REQUESTS)."""
    with httpx.Client(timeout=60) as client:
        for i in range(MAX_LOAD_REQUESTS):
            if stop.is_set():
                return
            try:
                r = client.post(f"{api.url}/v1/predict", json={"text": f"Acme headline {i}"})
                if r.status_code != 200:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
                    continue
                version = r.json()["model_version"]
                seen[version] = seen.get(version, 0) + 1
            except httpx.HTTPError as exc:
                errors.append(repr(exc))


def test_follows_promotion_rollback_and_survives_a_version_that_cannot_load(registered, tiny_model_dir):
    from finsent.cli import main

    server = Api(registered)
    try:
        server.ready()
        stop, seen, errors = threading.Event(), {}, []
        threads = [threading.Thread(target=load, args=(server, stop, seen, errors)) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            assert rs.register_synthetic(registered, tiny_model_dir, 0.90).promoted  # version 2
            server.wait_version("2")
            assert main(["--root", str(registered), "registry", "rollback"]) == 0
            server.wait_version("1")
            time.sleep(1)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        assert errors == [] and set(seen) == {"1", "2"}, (errors[:5], seen)

        # A champion whose files are gone (set by another tool): the old one serves on, and says so.
        rs.register_synthetic(registered, tiny_model_dir, 0.95)  # version 3, promoted
        server.wait_version("3")
        rs.register_synthetic(registered, tiny_model_dir, 0.50)  # version 4, not promoted
        rs.delete_model_files(registered, "4")
        rs.client_for(registered).set_registered_model_alias(rs.MODEL, "champion", "4")
        ready = wait_for(lambda: (b := server.get("/readyz").json())["load_error"] and b, 60, "the load failure reported")
        assert ready["ready"] and ready["model"]["version"] == "3" and ready["champion_version"] == "4"
        assert "version 4 could not be loaded" in ready["load_error"]
        assert server.post("/v1/predict", {"text": "still serving"}).json()["model_version"] == "3"
        assert "finsent_model_load_failing 1.0" in server.get("/metrics").text
    finally:
        server.stop()
    assert "Traceback" not in server.log.read_text() or "could not be loaded" in server.log.read_text()


def test_no_champion_is_not_ready_then_ready_once_one_is_promoted(project, tiny_model_dir, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    versioning.ensure_data(project, rs.relaxed_params(project).data, log=lambda *_: None)
    server = Api(project)
    try:
        first = wait_for(
            lambda: (r := _answer(server, "/readyz")) is not None and r.json()["load_error"] and r, READY_TIMEOUT_S, "the registry checked"
        )
        assert first.status_code == 503 and "no champion" in first.json()["load_error"]
        refused = server.post("/v1/predict", {"text": "too early"})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1" and "no model loaded" in refused.json()["detail"]
        assert server.get("/healthz").status_code == 200
        rs.register_synthetic(project, tiny_model_dir, 0.70)
        assert server.wait_version("1")["ready"]
    finally:
        server.stop()


def _answer(server: Api, path: str) -> httpx.Response | None:
    try:
        return server.get(path)
    except httpx.TransportError:
        return None


def test_a_store_that_cannot_be_used_fails_ingest_clearly_while_scoring_goes_on(registered, tmp_path):
    garbage = tmp_path / "predictions.db"
    garbage.write_bytes(b"this is not a database" * 100)
    server = Api(registered, f"monitor.store_url=sqlite:///{garbage}")
    try:
        server.ready()
        item = {"text": "$ACME beats estimates", "published_at": "2026-11-29T09:00Z", "id": "s1"}
        refused = server.post("/v1/news", {"items": [item]})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        detail = refused.json()["detail"]
        assert "predictions store" in detail and "cannot be used" in detail and "Traceback" not in refused.text
        for path in ("/v1/index", "/v1/alerts"):
            answer = server.get(path)
            assert answer.status_code == 503 and "cannot be used" in answer.json()["detail"], path
        assert server.post("/v1/predict", {"text": "still scoring"}).status_code == 200  # the model needs no store
        assert "cannot be used" in server.get("/readyz").json()["store_error"]
        assert garbage.read_bytes() == b"this is not a database" * 100  # left as it was
    finally:
        server.stop()
