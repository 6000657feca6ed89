"""The analysts' page with an explainer (`finsent dashboard --explain`): a clicked headline is explained
(its top words in the title, its words highlighted in the panel); without one the page has no panel."""

from __future__ import annotations

import json

import pytest

from finsent.dashboard import app as dash_app
from finsent.explain.attributions import explain
from finsent.monitoring.store import make_engine
from testkit import dashboard_store
from testkit.keyword_task import keyword_scorer


@pytest.fixture
def store(tmp_path):
    return dashboard_store.fill(make_engine(f"sqlite:///{tmp_path / 'predictions.db'}"))


def explainer(text: str):
    return explain(keyword_scorer(), text, n_steps=16, model_version="5")


def test_a_clicked_headline_is_explained():
    rows = [{"text": "the bank said shares plunge"}, {"text": "sales surge at the <bank>"}]
    page, title = dash_app.explanation_view(explainer, {"row": 1, "column": 1}, rows, top_k=1)
    assert title.startswith("Why bullish (p = ") and title.endswith("top words “surge”")
    assert page.startswith("<!DOCTYPE html>") and ">surge</span>" in page and "&lt;bank&gt;" in page
    assert dash_app.explanation_view(explainer, None, rows) == ("", dash_app.EXPLAIN_HINT)
    assert dash_app.explanation_view(explainer, {"row": 5}, rows) == ("", dash_app.EXPLAIN_HINT)
    assert dash_app.explanation_view(explainer, {"row": 0}, [{"text": " "}]) == ("", dash_app.EXPLAIN_HINT)


def test_the_panel_is_there_only_with_an_explainer_and_its_callback_answers(store):
    plain = json.dumps(dash_app.create_app(store).server.test_client().get("/_dash-layout").get_json())
    assert "explanation" not in plain
    client = dash_app.create_app(store, explainer=explainer, top_k=2).server.test_client()
    assert '"explanation-title"' in json.dumps(client.get("/_dash-layout").get_json())
    body = {
        "output": "..explanation.srcDoc...explanation-title.children..",
        "outputs": [{"id": "explanation", "property": "srcDoc"}, {"id": "explanation-title", "property": "children"}],
        "inputs": [{"id": "headlines-table", "property": "active_cell", "value": {"row": 0, "column": 1}}],
        "state": [{"id": "headlines-table", "property": "data", "value": [{"text": "shares plunge today"}]}],
        "changedPropIds": ["headlines-table.active_cell"],
    }
    response = client.post("/_dash-update-component", json=body)
    assert response.status_code == 200, response.data[:500]
    answer = response.get_json()["response"]
    assert answer["explanation-title"]["children"].startswith("Why bearish") and ">plunge</span>" in answer["explanation"]["srcDoc"]
