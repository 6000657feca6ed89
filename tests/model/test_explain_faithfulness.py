"""Faithfulness of the explanations on a model whose reasons are known: the tiny BERT trained on the
keyword task (testkit.keyword_task) reads "plunge" as bearish and "surge" as bullish and nothing else.
The explanation must rank the keyword first, and deleting the top-ranked word must lower the predicted
class's probability far more than deleting a random word. (The same deletion test on the real MiniLM,
fine-tuned on TFNS: tests/model/test_real_encoder.py, marked slow.)"""

from __future__ import annotations

from finsent.explain.attributions import explain
from finsent.explain.faithfulness import deletion_test
from testkit.keyword_task import KEYWORDS, keyword_scorer, keyword_texts

# Measured on 60 held-out texts at n_steps 16: keyword first in 43 of 43; deletion drops 0.41 (top word)
# against 0.08 (a random word), a margin of 0.33. Chance ranking would give a margin near 0.
KEYWORD_FIRST_SHARE = 0.95
MARGIN = 0.25


def test_the_keyword_gets_the_top_attribution():
    scorer = keyword_scorer()
    texts, labels = keyword_texts(60, seed=7)
    keyed = [t for t, y in zip(texts, labels) if y in KEYWORDS.values()]
    first = [max(explain(scorer, t, n_steps=16).words, key=lambda w: w.score).word for t in keyed]
    share = sum(word in KEYWORDS for word in first) / len(keyed)
    assert share >= KEYWORD_FIRST_SHARE, list(zip(keyed, first))


def test_deleting_the_top_word_lowers_the_probability_more_than_a_random_word():
    texts, _ = keyword_texts(60, seed=7)
    result = deletion_test(keyword_scorer(), texts, k=1, n_steps=16, seed=0)
    assert result.texts == 60 and result.margin >= MARGIN, result
