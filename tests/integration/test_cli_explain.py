"""`finsent explain` on a project whose registry has a champion (the tiny BERT): the JSON on stdout,
the HTML view in the file asked for, the registry's version named; and a clear error without one."""

from __future__ import annotations

import json

import pytest

from finsent.cli import main

pytestmark = pytest.mark.integration


def test_explain_uses_the_champion_and_writes_the_html_view(registered, tmp_path, capsys):
    page = tmp_path / "why.html"
    assert main(["--root", str(registered), "explain", "Acme shares plunge after the recall", "--html", str(page), "--top-k", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model_version"] == "1" and out["label"] in {"bearish", "bullish", "neutral"}
    assert [w["word"] for w in out["words"]] == ["Acme", "shares", "plunge", "after", "the", "recall"]
    assert len(out["top_words"]) <= 2 and out["html"] == str(page)
    assert abs(sum(w["score"] for w in out["words"]) - out["baseline_gap"] - out["convergence_delta"]) < 1e-4
    assert ">plunge</span>" in page.read_text(encoding="utf-8")


def test_explain_without_a_champion_is_a_clear_error(project, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["--root", str(project), "explain", "Acme beats"]) == 2
    assert "champion" in capsys.readouterr().err


def test_the_dashboards_explainer_is_the_champion(registered):
    from finsent.config import load_params
    from finsent.dashboard.server import champion_explainer

    explainer = champion_explainer(load_params(registered / "params.yaml"), registered)
    explanation = explainer("Acme shares plunge")
    assert explanation.model_version == "1" and [w.word for w in explanation.words] == ["Acme", "shares", "plunge"]
