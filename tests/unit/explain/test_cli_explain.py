"""`finsent explain` stops at its arguments with one clear line (exit 2) before any model or registry
is reached; `finsent explain`'s own work (``explain.run``) on the trained tiny BERT writes the JSON
and the HTML view. The command on a registered champion: tests/integration/test_cli_explain.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from finsent.cli import main
from finsent.config import ExplainParams
from finsent.explain.attributions import ExplainError
from finsent.explain.run import run
from testkit.keyword_task import keyword_scorer

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def root(tmp_path, monkeypatch):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'never-created' / 'mlflow.db'}")
    return tmp_path


@pytest.mark.parametrize("text", ["", "   ", "\u200b"])
def test_an_empty_text_is_refused_before_any_model_loads(root, capsys, text):
    assert main(["--root", str(root), "explain", text]) == 2
    err = capsys.readouterr().err
    assert err.startswith("finsent: error:") and "empty" in err and "Traceback" not in err
    assert not (root / "never-created").exists() and not (root / "mlflow.db").exists()


def test_an_html_path_that_is_a_folder_is_refused_before_any_model_loads(root, capsys):
    assert main(["--root", str(root), "explain", "shares surge", "--html", str(root)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert not (root / "never-created").exists()


def test_run_returns_the_json_and_writes_the_html_view(tmp_path):
    scorer = keyword_scorer()
    out = run(
        ExplainParams(n_steps=16, top_k=2), scorer, "the bank said shares plunge", model_version="4", html_path=tmp_path / "v" / "e.html"
    )
    assert json.loads(json.dumps(out)) == out  # plain JSON
    assert out["label"] == "bearish" and out["top_words"][0] == "plunge" and len(out["top_words"]) <= 2
    assert out["model_version"] == "4" and out["n_steps"] == 16 and out["html"] == str(tmp_path / "v" / "e.html")
    page = (tmp_path / "v" / "e.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and ">plunge</span>" in page
    assert len(run(ExplainParams(n_steps=8), scorer, "the bank said shares plunge", top_k=1)["top_words"]) == 1
    with pytest.raises(ExplainError, match="top_k"):
        run(ExplainParams(n_steps=8), scorer, "shares plunge", top_k=0)
