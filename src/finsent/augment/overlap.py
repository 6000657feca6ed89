"""Exact and near duplicates of evaluation rows, found fast enough for every augmented row.

Two texts are the same row when their ``overlap_key`` matches (case, links, digits, punctuation and
spacing ignored), and near duplicates when the Jaccard similarity of their word sets reaches a
threshold. The near-duplicate search uses prefix filtering (Chaudhuri et al., 2006; Bayardo et al.,
2007): with words ordered rarest first, two sets at Jaccard >= t must share a word among the first
``n - ceil(t * n) + 1`` words of each, so only the evaluation rows that share such a word are compared.
It is exact, not an approximation.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from finsent.vocabulary import URL

_NOT_LETTERS = re.compile(r"[\W\d_]+")


def overlap_key(text: str) -> str:
    """Lower case, links removed, digits and punctuation removed, spaces collapsed."""
    return " ".join(_NOT_LETTERS.sub(" ", URL.sub(" ", text.lower())).split())


def word_set(text: str) -> frozenset[str]:
    return frozenset(overlap_key(text).split())


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _prefix_length(size: int, threshold: float) -> int:
    return size - math.ceil(threshold * size - 1e-9) + 1


class EvalOverlapIndex:
    """Answers "is this text an exact or near duplicate of an evaluation row?"."""

    def __init__(self, eval_texts: Iterable[str], threshold: float) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"near-duplicate threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        keys = [overlap_key(t) for t in eval_texts]
        self._keys = {k for k in keys if k}
        self._sets = [frozenset(k.split()) for k in self._keys]
        self._frequency = Counter(w for s in self._sets for w in s)
        self._postings: dict[str, list[int]] = defaultdict(list)
        for i, words in enumerate(self._sets):
            for w in self._rarest_first(words)[: _prefix_length(len(words), threshold)]:
                self._postings[w].append(i)

    def _rarest_first(self, words: frozenset[str]) -> list[str]:
        # Words absent from the evaluation rows count 0 and come first; ties break by the word itself.
        return sorted(words, key=lambda w: (self._frequency.get(w, 0), w))

    def matches(self, text: str) -> bool:
        key = overlap_key(text)
        if not key:
            return False
        if key in self._keys:
            return True
        words = frozenset(key.split())
        low, high = self.threshold * len(words), len(words) / self.threshold
        prefix = self._rarest_first(words)[: _prefix_length(len(words), self.threshold)]
        candidates = {i for w in prefix for i in self._postings.get(w, ())}
        return any(low - 1e-9 <= len(self._sets[i]) <= high + 1e-9 and jaccard(words, self._sets[i]) >= self.threshold for i in candidates)

    def mask(self, texts: Sequence[str]) -> list[bool]:
        return [self.matches(t) for t in texts]
