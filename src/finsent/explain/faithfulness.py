"""Are the explanations faithful? The deletion test: take out the words an explanation ranks highest and
the explained class's probability should fall, by more than when as many words chosen at random are
taken out (Samek et al. 2017, "Evaluating the visualization of what a deep neural network has learned";
DeYoung et al. 2020, ERASER's "comprehensiveness").

A method that ranked words no better than chance would show no margin; one that is faithful to the
model shows a clear one. The tests (tests/model/) state the margin each model must reach.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from finsent.explain.attributions import explain, without_words
from finsent.training.score import Scorer


@dataclass(frozen=True)
class DeletionResult:
    texts: int  # texts with more than k words (the others are skipped: nothing would be left)
    k: int
    top_drop: float  # mean fall of the explained class's probability when its k top-ranked words go
    random_drop: float  # the same for k words drawn at random (mean over ``draws`` draws per text)

    @property
    def margin(self) -> float:
        return self.top_drop - self.random_drop


def deletion_test(
    scorer: Scorer, texts: Sequence[str], *, k: int, n_steps: int, seed: int = 0, draws: int = 5, internal_batch_size: int | None = None
) -> DeletionResult:
    """The deletion test over ``texts``, explaining each one's predicted class with ``n_steps``."""
    rng = np.random.default_rng(seed)
    top, random = [], []
    labels = scorer.labels
    for text in texts:
        e = explain(scorer, text, n_steps=n_steps, internal_batch_size=internal_batch_size)
        if len(e.words) <= k:
            continue
        index = labels.index(e.label)
        ranked = sorted(e.words, key=lambda w: -w.score)[:k]
        variants = [without_words(text, ranked)]
        for _ in range(draws):
            variants.append(without_words(text, [e.words[i] for i in rng.choice(len(e.words), size=k, replace=False)]))
        after = scorer.predict_proba(variants)[:, index]
        top.append(e.probability - float(after[0]))
        random.append(e.probability - float(after[1:].mean()))
    if not top:
        return DeletionResult(texts=0, k=k, top_drop=float("nan"), random_drop=float("nan"))
    return DeletionResult(texts=len(top), k=k, top_drop=float(np.mean(top)), random_drop=float(np.mean(random)))
