"""EDA-style noise (Wei & Zou, 2019): random swap and random deletion of words.

Only plain words move or go: tickers, links, numbers, acronyms, company and broker names, negations,
every word that signals a direction and the lexicon's ``keep`` words ("to", "from", "cut") stay where
they are, so the noise cannot drop the "down" from "Dow down 300 points", split "J.P. Morgan" or swap
"to" and "from" in "cut to $20 from $30".
"""

from __future__ import annotations

import re
import string

import numpy as np

from finsent.augment.lexicon import Lexicon
from finsent.augment.text import find_outside_urls
from finsent.vocabulary import CASHTAG, URL

_TOKEN = re.compile(r"\S+")
_EDGE_PUNCTUATION = string.punctuation + "“”‘’…"
_MIN_TOKENS_FOR_DELETION = 4


def _is_plain_word(token: str, lexicon: Lexicon) -> bool:
    if URL.search(token) or CASHTAG.search(token) or any(c.isdigit() for c in token):
        return False
    core = token.strip(_EDGE_PUNCTUATION)
    if not core or (core.isupper() and len(core) > 1):  # tickers and acronyms: (BE), SNWV:, FDA
        return False
    lowered = core.lower()
    return lowered not in lexicon.protected_tokens and "n't" not in lowered and "n’t" not in lowered


def _movable(text: str, lexicon: Lexicon) -> tuple[list[str], list[int]]:
    """The text's tokens, and the positions of those that may move or go."""
    tokens = list(_TOKEN.finditer(text))
    names = [m.span() for p in (lexicon.company_pattern, lexicon.broker_pattern) for m in find_outside_urls(p, text)]
    positions = [
        i for i, t in enumerate(tokens) if _is_plain_word(t.group(0), lexicon) and not any(s < t.end() and t.start() < e for s, e in names)
    ]
    return [t.group(0) for t in tokens], positions


def random_swap(text: str, rng: np.random.Generator, lexicon: Lexicon, swaps: int = 1) -> str | None:
    """Swap two plain words, ``swaps`` times."""
    tokens, positions = _movable(text, lexicon)
    if len(positions) < 2:
        return None
    for _ in range(swaps):
        i, j = rng.choice(positions, size=2, replace=False)
        tokens[i], tokens[j] = tokens[j], tokens[i]
    out = " ".join(tokens)
    return out if out != " ".join(text.split()) else None


def random_deletion(text: str, rng: np.random.Generator, lexicon: Lexicon, prob: float = 0.1) -> str | None:
    """Drop each plain word with probability ``prob`` (at least one, at most half of all words)."""
    tokens, positions = _movable(text, lexicon)
    if len(tokens) < _MIN_TOKENS_FOR_DELETION or not positions:
        return None
    dropped = [p for p in positions if rng.random() < prob]
    if not dropped:
        dropped = [int(rng.choice(positions))]
    gone = set(dropped[: len(tokens) // 2])
    return " ".join(t for i, t in enumerate(tokens) if i not in gone)
