"""An explanation as one self-contained HTML page: the text with each word highlighted by its score.

Red marks a word that pushes toward the explained class, blue one that pushes against it; the opacity is
the word's |score| over the largest |score| of the text, so the strongest word is fully coloured and the
scale of one page says nothing about another's. Each word's score is in its tooltip. The page needs
nothing but itself (no script, no font, no stylesheet from elsewhere): it opens from a file, in an
iframe's ``srcdoc`` or an e-mail. Every piece of text is HTML-escaped; a headline is input from outside.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a pure function of the explanation's fields: no torch needed to draw one
    from finsent.explain.attributions import Explanation

TOWARD = (220, 38, 38)  # red
AGAINST = (37, 99, 235)  # blue

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #111; }
.text { font-size: 1.25em; line-height: 2; }
.w { padding: 0.1em 0.15em; border-radius: 0.2em; }
.meta { color: #444; font-size: 0.9em; margin-top: 1em; }
.legend span { padding: 0.1em 0.4em; border-radius: 0.2em; margin-right: 0.5em; }
"""


def _colour(score: float, largest: float) -> str:
    opacity = min(abs(score) / largest, 1.0) if largest > 0 else 0.0
    r, g, b = TOWARD if score > 0 else AGAINST
    return f"rgba({r}, {g}, {b}, {opacity:.3f})"


def highlighted_text(explanation: Explanation) -> str:
    """The text as HTML: every word in a coloured ``<span>``, the white space between them as it was."""
    text = explanation.text
    largest = max((abs(w.score) for w in explanation.words), default=0.0)
    parts, at = [], 0
    for w in explanation.words:
        parts.append(escape(text[at : w.start]))
        parts.append(
            f'<span class="w" style="background-color: {_colour(w.score, largest)}" title="{w.score:+.4f}">{escape(w.word)}</span>'
        )
        at = w.end
    parts.append(escape(text[at:]))
    return "".join(parts)


def explanation_html(explanation: Explanation, *, top_k: int = 5, title: str = "finsent: why this label") -> str:
    """A complete HTML page for ``explanation`` (a pure function of it)."""
    e = explanation
    top = ", ".join(escape(w.word) for w in e.top_words(top_k)) or "none"
    version = f", model version {escape(e.model_version)}" if e.model_version else ""
    predicted = "" if e.label == e.predicted else f" (the model predicts {escape(e.predicted)})"
    cut = "<br>The text is longer than the model reads: the words past its limit score 0." if e.truncated else ""
    r, g, b = TOWARD
    rb, gb, bb = AGAINST
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>\n"
        f"<h2>{escape(e.label)} &middot; p = {e.probability:.3f}{predicted}</h2>\n"
        f'<div class="text">{highlighted_text(e)}</div>\n'
        '<div class="meta legend">'
        f'<span style="background-color: rgba({r}, {g}, {b}, 0.6)">toward {escape(e.label)}</span>'
        f'<span style="background-color: rgba({rb}, {gb}, {bb}, 0.6)">against {escape(e.label)}</span>'
        "opacity: |score| relative to the strongest word</div>\n"
        f'<div class="meta">Top words: {top}<br>'
        f"Integrated gradients over the word embeddings, {e.n_steps} steps{version}; "
        f"the scores add up to {e.baseline_gap:+.4f} (the label's probability over an all-[PAD] baseline) "
        f"to within {abs(e.convergence_delta):.2g}.{cut}</div>\n"
        "</body></html>\n"
    )
