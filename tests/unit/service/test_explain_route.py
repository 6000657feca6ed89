"""POST /v1/explain on the app with the tiny BERT trained on the keyword task: the answer, the limits
it shares with /v1/predict, 503 while no model is loaded, and 503 with Retry-After past
explain.max_pending while scoring goes on."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from finsent.config import Params, replace
from finsent.monitoring.champion import Champion
from finsent.service.app import create_app
from finsent.service.follower import ChampionFollower
from testkit.keyword_task import keyword_scorer


def _follower(version: str | None) -> ChampionFollower:
    scorer = keyword_scorer()
    champion = lambda v: Champion(name="finsent-sentiment", version=v, run_id=None, scorer=scorer, baseline_macro_f1=None, data_md5=None)  # noqa: E731
    return ChampionFollower(lambda: version, champion, poll_s=60)


def _client(tmp_path, monkeypatch, version: str | None = "3", **sections) -> tuple[TestClient, ChampionFollower]:
    p = replace(Params(), **sections)
    monkeypatch.delenv(p.service.token_env, raising=False)
    follower = _follower(version)
    return TestClient(create_app(p, tmp_path, follower=follower)), follower


def test_explain_answers_with_the_words_and_the_model_that_explained(tmp_path, monkeypatch):
    client, follower = _client(tmp_path, monkeypatch, monitor={"max_text_chars": 60})
    with client:
        assert follower.wait_first_check(30) and follower.current is not None
        response = client.post("/v1/explain", json={"text": "the bank said shares plunge", "top_k": 1})
        assert response.status_code == 200, response.text
        body = response.json()
        assert [body[key] for key in ("model_name", "model_version", "label", "predicted")] == [
            "finsent-sentiment",
            "3",
            "bearish",
            "bearish",
        ]
        assert [w["word"] for w in body["words"]] == ["the", "bank", "said", "shares", "plunge"]
        assert body["top_words"] == ["plunge"] and body["n_steps"] == Params().explain.n_steps
        predicted = client.post("/v1/predict", json={"text": "the bank said shares plunge"}).json()["predictions"][0]
        assert body["probability"] == pytest.approx(predicted["probabilities"]["bearish"], abs=1e-6)  # the same (calibrated) number
        assert abs(sum(w["score"] for w in body["words"]) - body["baseline_gap"] - body["convergence_delta"]) < 1e-4
        assert client.post("/v1/explain", json={"text": "   "}).status_code == 422
        too_long = client.post("/v1/explain", json={"text": "x" * 61})
        assert too_long.status_code == 413 and "monitor.max_text_chars" in too_long.json()["detail"]
        assert client.post("/v1/explain", json={"texts": ["a"]}).status_code == 422
        assert client.post("/v1/explain", json={"text": "shares surge", "top_k": 0}).status_code == 422
        assert 'finsent_request_seconds_count{route="/v1/explain"}' in client.get("/metrics").text


def test_no_model_yet_is_503_with_retry_after(tmp_path, monkeypatch):
    client, follower = _client(tmp_path, monkeypatch, version=None)
    with client:
        assert follower.wait_first_check(30)
        response = client.post("/v1/explain", json={"text": "shares surge"})
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert "no champion" in response.json()["detail"]


def test_past_max_pending_an_explanation_is_refused_while_scoring_goes_on(tmp_path, monkeypatch):
    # Enough steps that one explanation is still running when the next request comes; one admitted at a time.
    client, follower = _client(tmp_path, monkeypatch, explain={"n_steps": 600, "internal_batch_size": 200, "max_pending": 1})
    service = client.app.state.service
    with client:
        assert follower.wait_first_check(30)
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(lambda: client.post("/v1/explain", json={"text": "investors plan a deal as sales surge"}))
            deadline = time.monotonic() + 30
            while service.explain_pending == 0 and time.monotonic() < deadline and not first.done():
                time.sleep(0.001)
            second = client.post("/v1/explain", json={"text": "shares plunge"})
            scored = client.post("/v1/predict", json={"texts": ["shares plunge", "shares surge"]})  # beside the explanation
            assert first.result().status_code == 200
        assert second.status_code == 503 and second.headers["retry-after"] == "1" and "explain.max_pending" in second.json()["detail"]
        assert scored.status_code == 200 and [p["label"] for p in scored.json()["predictions"]] == ["bearish", "bullish"]
        assert "finsent_explain_rejections_total 1.0" in client.get("/metrics").text
        assert client.post("/v1/explain", json={"text": "shares surge"}).status_code == 200  # admitted again once it is done
