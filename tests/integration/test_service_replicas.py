"""Two `finsent api` replicas on one PostgreSQL predictions store and one MLflow registry: they keep no
state of their own, so overlapping posts sent to both at once are stored once, and both follow a
promotion."""

from __future__ import annotations

import threading

import httpx
import pytest
import sqlalchemy

from testkit import registry_synthetic as rs
from testkit.live_api import Api
from testkit.local_services import create_database

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ITEMS = 120
CHUNK = 20
CLIENTS = 4


def post_all(replicas: list[Api], client_no: int, stored: list[int], errors: list[str]) -> None:
    """Every item, in chunks, starting at a different offset per client and alternating replicas."""
    ids = list(range(ITEMS))
    shift = client_no * CHUNK
    ids = ids[shift:] + ids[:shift]
    with httpx.Client(timeout=120) as client:
        for n, start in enumerate(range(0, ITEMS, CHUNK)):
            items = [
                {"text": f"$ACME headline number {i}", "published_at": "2026-11-29T12:00:00Z", "id": f"item-{i}"}
                for i in ids[start : start + CHUNK]
            ]
            replica = replicas[(client_no + n) % len(replicas)]
            r = client.post(f"{replica.url}/v1/news", json={"items": items})
            if r.status_code != 200:
                errors.append(f"{r.status_code} {r.text[:300]}")
                continue
            stored.append(r.json()["stored"])


def test_two_replicas_store_overlapping_posts_once_and_both_follow_a_promotion(registered, tiny_model_dir, postgres):
    store_url = create_database(postgres, "replicas")
    replicas = [Api(registered, f"monitor.store_url={store_url}") for _ in range(2)]
    try:
        for replica in replicas:
            assert replica.ready()["model"]["version"] == "1"
        stored: list[int] = []
        errors: list[str] = []
        clients = [threading.Thread(target=post_all, args=(replicas, c, stored, errors)) for c in range(CLIENTS)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(300)
        assert errors == []
        assert sum(stored) == ITEMS  # each item reported stored by exactly one post
        engine = sqlalchemy.create_engine(store_url)
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text("SELECT count(*), count(DISTINCT text) FROM predictions")).one()
            keys = conn.execute(sqlalchemy.text("SELECT count(*) FROM news_items")).scalar_one()
        engine.dispose()
        assert tuple(rows) == (ITEMS, ITEMS) and keys == ITEMS

        assert rs.register_synthetic(registered, tiny_model_dir, 0.90).promoted
        for replica in replicas:
            replica.wait_version("2")
    finally:
        for replica in replicas:
            replica.stop()
