"""Stored news never escapes monitoring: a window that fails after its files were stored is taken whole by
the next run, and news stored outside a window (posted to the service, or `finsent score`) joins the next
one. Before, a failure after scoring left those rows in the store with no drift check, estimate or alert,
and every later run said "no new batch files"."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from finsent import tracking
from finsent.config import load_params
from finsent.monitoring import history, report
from finsent.monitoring.champion import load_champion
from finsent.monitoring.store import open_store, window_batches
from finsent.service import ingest
from testkit.adversarial import Snapshot

pytestmark = pytest.mark.integration
QUICK = ("--set", "drift.signals=[prediction]")  # one quick drift signal: the window, not the report, is tested


def monitor(cli, *args: str):
    return cli.ok(*QUICK, "monitor", "run", "--no-retrain", *args)


def closed_batches(project) -> int:
    engine = open_store(load_params(project / "params.yaml").monitor, project)
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(window_batches)).scalar_one()


def test_a_window_that_fails_after_scoring_is_taken_whole_by_the_next_run(cli, news, monkeypatch):
    inbox = cli.project / "inbox"
    inbox.mkdir()
    file = news(60)
    (inbox / file.name).write_bytes(file.read_bytes())
    before = cli.snapshot()

    def tracking_down(*args, **kwargs):
        raise tracking.StoreUnavailable("MLflow tracking store unreachable (injected after the window was scored)")

    with monkeypatch.context() as patch:
        patch.setattr(report, "log_monitoring_run", tracking_down)
        code, out, err = cli.run(*QUICK, "monitor", "run", "--no-retrain")
    assert code == 2 and "unreachable" in err and "Traceback" not in err
    assert Snapshot.take(cli.project).rows() == before.rows() + 60  # stored in its transaction
    assert closed_batches(cli.project) == 0  # and still waiting for a whole window
    engine = open_store(load_params(cli.project / "params.yaml").monitor, cli.project)
    drift_records = len(history.read_windows(engine))

    retaken = monitor(cli)  # no new file: the stored batch is the window
    assert retaken["status"] == "monitored" and retaken["window_rows"] == 60 and retaken["scoring"] == []
    assert retaken["drift"] is not None and retaken["mlflow_run_id"]
    assert len(history.read_windows(engine)) == max(drift_records, 1)  # the failed run's record replaced, not doubled
    assert closed_batches(cli.project) == 1
    assert monitor(cli)["status"] == "no_new_batches"


def test_news_stored_by_the_service_and_by_score_join_the_next_window(cli, news, eval_texts_free):
    p = load_params(cli.project / "params.yaml")
    engine = open_store(p.monitor, cli.project)
    champion = load_champion(p, cli.project)
    posted = [
        {"text": text, "published_at": f"2024-03-0{1 + i % 3}T10:00:00Z", "ticker": "AAPL", "id": f"post-{i}"}
        for i, text in enumerate(eval_texts_free["text"].iloc[200:230])
    ]
    checked = ingest.check_items(posted, p.monitor)  # what POST /v1/news does with a champion's scores
    scored = ingest.scored_frame(checked.frame, champion.scorer.predict_proba(checked.frame["text"].tolist()))
    assert len(ingest.store(engine, scored, checked.keys, len(posted), model_name=champion.name, model_version=champion.version)) == 30
    assert cli.ok("score", str(news(20)))["status"] == "scored"

    summary = monitor(cli)  # no inbox at all: the scheduled run of a service-only deployment
    assert summary["status"] == "monitored" and summary["window_rows"] == 50
    assert "50 rows from 2 stored batch(es)" in summary["message"]
    assert closed_batches(cli.project) == 2 and history.pending_batch_ids(engine) == []
