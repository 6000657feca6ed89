"""``finsent explain``: one text's explanation as JSON, and its HTML view written to a file when asked.

The model comes from the caller (the CLI loads the registry's champion; the live service passes the one
it follows), so this is the same ``explain`` the service answers ``POST /v1/explain`` with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finsent import files
from finsent.config import ExplainParams
from finsent.explain.attributions import ExplainError, check_text, explain
from finsent.explain.html import explanation_html
from finsent.training.score import Scorer


def html_target(path: str | Path) -> Path:
    """Where the HTML view goes, checked before any model loads: a file path, not a folder."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise ExplainError(f"--html {target} is a folder; give a file name, e.g. {target / 'explanation.html'}")
    return target


def run(
    p: ExplainParams,
    scorer: Scorer,
    text: str,
    *,
    model_version: str | None = None,
    top_k: int | None = None,
    html_path: Path | None = None,
) -> dict[str, Any]:
    """Explain ``text`` with ``p``'s settings; write the HTML view to ``html_path`` (atomically) when
    given. Returns the explanation as a dict, with its ``top_k`` (default ``p.top_k``) top words."""
    check_text(text)
    k = p.top_k if top_k is None else top_k
    if k < 1:
        raise ExplainError(f"top_k must be >= 1, not {k}")
    explanation = explain(scorer, text, n_steps=p.n_steps, internal_batch_size=p.internal_batch_size, model_version=model_version)
    out = explanation.to_dict(top_k=k)
    if html_path is not None:
        try:
            files.write_text(html_target(html_path), explanation_html(explanation, top_k=k))
        except OSError as exc:  # a folder that cannot be created, no permission
            raise ExplainError(f"cannot write the HTML view to {html_path}: {exc.strerror or exc}") from exc
        out["html"] = str(html_path)
    return out
