"""A task whose answer is known word by word: filler words, plus "plunge" (bearish) or "surge" (bullish),
or neither (neutral). The tiny BERT learns it in a few seconds to accuracy 1, so an explanation of its
prediction must put the keyword first, and deleting it must change the prediction.

``keyword_scorer()`` trains once per test process and returns a ``Scorer`` (no dropout, CPU, float32)."""

from __future__ import annotations

import functools

import numpy as np

from testkit.tiny_bert import NO_DROPOUT, TINY_RECIPE, minilm_tokenizer, tiny_bert

FILLER = (
    *("the", "company", "said", "today", "market", "report", "quarter", "shares", "its", "new"),
    *("board", "investors", "plan", "deal", "bank", "group", "year", "price", "sales"),
)
KEYWORDS = {"plunge": 0, "surge": 1}  # label ids: LABELS = (bearish, bullish, neutral)
NEUTRAL = 2


def keyword_texts(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """``n`` texts of 5-9 filler words; a third carry "plunge", a third "surge", at a random place."""
    rng = np.random.default_rng(seed)
    by_label = {label: word for word, label in KEYWORDS.items()}
    texts, labels = [], []
    for _ in range(n):
        words = [str(w) for w in rng.choice(FILLER, size=int(rng.integers(5, 10)))]
        label = int(rng.integers(0, 3))
        if label in by_label:
            words.insert(int(rng.integers(0, len(words) + 1)), by_label[label])
        texts.append(" ".join(words))
        labels.append(label)
    return texts, np.array(labels)


@functools.cache
def keyword_scorer(max_length: int = 64):
    """The tiny BERT trained on 1,500 keyword texts (3 epochs, about 3 s on 2 cores), as a Scorer."""
    from finsent.config import TrainParams
    from finsent.training.features import encode_texts
    from finsent.training.model import id2label
    from finsent.training.score import Scorer
    from finsent.training.train import fit, set_seed

    tokenizer = minilm_tokenizer()
    texts, labels = keyword_texts(1500, seed=0)
    set_seed(0)
    labels_of = id2label()
    model = tiny_bert(tokenizer, **NO_DROPOUT, id2label=labels_of, label2id={v: k for k, v in labels_of.items()})
    p = TrainParams(
        epochs=3.0,
        batch_size=32,
        learning_rate=2e-3,
        warmup_fraction=0.0,
        progress=False,
        checkpoint_every_minutes=0.0,
        device="cpu",
        **TINY_RECIPE,
    )
    fit(model, encode_texts(tokenizer, texts, max_length), labels, p, log=lambda _: None)
    return Scorer(tokenizer, model, max_length=max_length, device="cpu")
