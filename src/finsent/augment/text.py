"""Text helpers shared by the augmenters: which spans are off-limits, and what counts as a word."""

from __future__ import annotations

import re
from collections.abc import Callable

from finsent.vocabulary import CASHTAG, URL

_WORD = re.compile(r"[^\W\d_]{2,}")


def outside_urls(text: str, rewrite: Callable[[str], str]) -> str:
    """Apply ``rewrite`` to the text between URLs only: a link is an identifier, not prose."""
    parts: list[str] = []
    last = 0
    for match in URL.finditer(text):
        parts.append(rewrite(text[last : match.start()]))
        parts.append(match.group(0))
        last = match.end()
    parts.append(rewrite(text[last:]))
    return "".join(parts)


def prose(text: str) -> str:
    """The text without URLs and cashtags: what cue counting and language checks should look at."""
    return CASHTAG.sub(" ", URL.sub(" ", text))


def has_words(text: str) -> bool:
    """True when something besides tickers, links and numbers is there (two letters or more)."""
    return _WORD.search(prose(text)) is not None


def latin_share(text: str) -> float:
    """Share of letters that are ASCII: a cheap stand-in for "is English" that needs no model."""
    letters = [c for c in prose(text) if c.isalpha()]
    if not letters:
        return 0.0
    return sum(c.isascii() for c in letters) / len(letters)


def match_case(word: str, like: str) -> str:
    """Write ``word`` in the case pattern of ``like`` (UPPER, Title or lower)."""
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def squeeze_spaces(text: str) -> str:
    return re.sub(r"[ \t]+", " ", text).strip()


def find_outside_urls(pattern: re.Pattern[str], text: str) -> list[re.Match[str]]:
    """Matches of ``pattern`` that do not start inside a link."""
    links = [m.span() for m in URL.finditer(text)]
    return [m for m in pattern.finditer(text) if not any(start <= m.start() < end for start, end in links)]
