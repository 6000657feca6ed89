"""Synonym replacement from the finance lexicon.

Only words in the lexicon's synonym groups are replaced, and only by a member of the same group, so a
bullish word is never swapped for a bearish one. A general thesaurus is left out on purpose: WordNet
needs a data download, and its synonyms do not know that "rises" and "falls" must never trade places.
"""

from __future__ import annotations

import numpy as np

from finsent.augment.lexicon import Lexicon
from finsent.augment.text import find_outside_urls, match_case


def synonym_replace(text: str, rng: np.random.Generator, lexicon: Lexicon, max_replacements: int = 2) -> str | None:
    """Replace up to ``max_replacements`` lexicon words by another member of their group, in the same case."""
    matches = find_outside_urls(lexicon.synonym_pattern, text)
    if not matches:
        return None
    chosen = sorted(rng.choice(len(matches), size=min(max_replacements, len(matches)), replace=False))
    out = text
    for i in reversed(chosen):  # right to left, so earlier offsets stay valid
        m = matches[i]
        group = lexicon.synonyms[lexicon.synonym_group_of[m.group(0).lower()]].words
        others = [w for w in group if w.lower() != m.group(0).lower()]
        out = out[: m.start()] + match_case(others[int(rng.integers(len(others)))], m.group(0)) + out[m.end() :]
    return out if out != text else None
