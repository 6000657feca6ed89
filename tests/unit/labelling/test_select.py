"""The strategies that choose what to label: each picks what it promises on inputs built so that the
others would pick differently, returns ids with the score that chose them, and is seeded."""

from __future__ import annotations

import numpy as np
import pytest

from finsent.config import LABEL_STRATEGIES, LabelParams
from finsent.errors import FinsentError
from finsent.labelling import select as sel


def test_entropy_and_margin_scales():
    probs = np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0]])
    assert sel.entropy(probs) == pytest.approx([0.0, 1.0, np.log(2) / np.log(3)])
    assert sel.margin(probs) == pytest.approx([1.0, 0.0, 0.0])


def test_uncertainty_and_margin_disagree_where_they_should():
    # Row 0 hesitates between two classes (margin 0), row 1 spreads over three (higher entropy).
    probs = np.array([[0.5, 0.5, 0.0], [0.4, 0.3, 0.3], [0.9, 0.05, 0.05], [0.8, 0.1, 0.1]])
    ids = np.array([10, 11, 12, 13])
    unc = sel.by_uncertainty(ids, probs, 2, seed=0)
    mar = sel.by_margin(ids, probs, 1, seed=0)
    assert unc.ids.tolist() == [11, 10] and unc.score_name == "entropy"
    assert unc.scores == pytest.approx(sel.entropy(probs)[[1, 0]])
    assert mar.ids.tolist() == [10] and mar.scores == pytest.approx([0.0])
    assert sel.by_uncertainty(ids, probs, 99, seed=0).ids.tolist() == [11, 10, 13, 12]  # n above the rows: all, ranked


def test_ties_are_broken_by_the_seed_alone():
    probs = np.full((30, 3), 1 / 3)
    ids = np.arange(100, 130)
    first = sel.by_uncertainty(ids, probs, 10, seed=1).ids
    assert sel.by_uncertainty(ids, probs, 10, seed=1).ids.tolist() == first.tolist()
    assert sel.by_uncertainty(ids, probs, 10, seed=2).ids.tolist() != first.tolist()


def clusters(rng: np.random.Generator, per: int = 10) -> np.ndarray:
    centres = np.array([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0]])
    return np.concatenate([c + rng.normal(0, 0.1, size=(per, 3)) for c in centres])


def test_diverse_spreads_over_the_clusters_where_uncertainty_piles_up():
    rng = np.random.default_rng(0)
    embeddings = clusters(rng)
    # Cluster 0 is slightly more uncertain than the others: uncertainty alone takes all three picks there.
    probs = np.tile([0.34, 0.33, 0.33], (30, 1))
    probs[10:] = [0.4, 0.3, 0.3]
    ids = np.arange(30)
    assert set(sel.by_uncertainty(ids, probs, 3, seed=0).ids // 10) == {0}
    picked = sel.by_diversity(ids, probs, embeddings, 3, pool_factor=10, seed=0)
    assert sorted(picked.ids // 10) == [0, 1, 2]
    assert picked.ids[0] // 10 == 0  # it starts at the most uncertain
    assert picked.score_name == "distance_to_nearest_pick" and (picked.scores > 1.0).all()  # unit vectors ~1.41 apart


def test_diverse_keeps_to_the_uncertain_pool():
    rng = np.random.default_rng(1)
    embeddings = clusters(rng)
    probs = np.tile([0.34, 0.33, 0.33], (30, 1))
    probs[20:] = [0.98, 0.01, 0.01]  # cluster 2: the champion is sure
    picked = sel.by_diversity(np.arange(30), probs, embeddings, 2, pool_factor=10, seed=0)
    assert sorted(picked.ids // 10) == [0, 1]
    # Pool of 2 x 1: only the two most uncertain rows, whatever their spread.
    narrow = sel.by_diversity(np.arange(30), probs, embeddings, 2, pool_factor=1, seed=0)
    assert set(narrow.ids) <= set(sel.by_uncertainty(np.arange(30), probs, 2, seed=0).ids)


def test_k_center_greedy_on_a_line():
    points = np.array([[0.0], [1.0], [2.0], [10.0], [9.0]])
    chosen, distances = sel.k_center_greedy(points, 3, first=0)
    assert chosen.tolist() == [0, 3, 2] and distances.tolist() == [10.0, 10.0, 2.0]


def test_drifted_favours_what_is_unlike_the_training_data():
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, size=(200, 8))
    # 40 candidates like the training data, 10 shifted by 4 standard deviations along one axis.
    candidates = np.concatenate([rng.normal(0, 1, size=(40, 8)), rng.normal(0, 1, size=(10, 8)) + [4, 0, 0, 0, 0, 0, 0, 0]])
    ids = np.arange(1000, 1050)
    picked = sel.by_drift(ids, candidates, reference, 10, folds=5, seed=0)
    assert (picked.ids >= 1040).sum() >= 7  # random picks would hold 2 of the shifted ten (8 on this seed)
    scores = sel.domain_scores(reference, candidates, folds=5, seed=0)
    assert scores[40:].mean() > scores[:40].mean() + 0.2
    assert picked.score_name == "p_unlike_training" and ((picked.scores >= 0) & (picked.scores <= 1)).all()
    assert list(picked.scores) == sorted(picked.scores, reverse=True)
    again = sel.by_drift(ids, candidates, reference, 10, folds=5, seed=0)
    assert again.ids.tolist() == picked.ids.tolist() and np.array_equal(again.scores, picked.scores)


def test_drift_scores_are_cross_fitted():
    """A candidate that is an exact copy of a training text is not found unlike it: its score comes
    from a classifier that never saw it, not from one that memorised it."""
    rng = np.random.default_rng(3)
    reference = rng.normal(0, 1, size=(100, 40))  # wide: an in-sample fit would separate anything
    candidates = reference[:20] + rng.normal(0, 1e-3, size=(20, 40))
    scores = sel.domain_scores(reference, candidates, folds=5, seed=0)
    assert scores.mean() < 0.75


def test_choose_dispatches_and_refuses_what_it_cannot_do():
    probs = np.tile([0.5, 0.3, 0.2], (6, 1))
    emb = np.eye(6)
    ids = np.arange(6)
    p = LabelParams(diverse_pool_factor=2, drift_folds=2)
    for strategy in LABEL_STRATEGIES:
        picked = sel.choose(strategy, ids, probs, emb, 2, p, reference_embeddings=np.eye(6)[::-1] + 1)
        assert picked.strategy == strategy and len(picked.ids) == len(picked.scores) == 2
    with pytest.raises(sel.SelectionError, match="unknown strategy 'random'"):
        sel.choose("random", ids, probs, emb, 2, p)
    with pytest.raises(sel.SelectionError, match="diverse needs the champion's embeddings"):
        sel.choose("diverse", ids, probs, None, 2, p)
    with pytest.raises(sel.SelectionError, match="training reference"):
        sel.choose("drifted", ids, probs, emb, 2, p)
    with pytest.raises(sel.SelectionError, match="at least 2 training reference rows"):
        sel.by_drift(ids, emb, emb[:1], 2, folds=2, seed=0)
    with pytest.raises(FinsentError, match="3 rows of probs for 6"):
        sel.by_uncertainty(ids, probs[:3], 2, seed=0)
    with pytest.raises(FinsentError, match="n must be >= 1"):
        sel.by_margin(ids, probs, 0, seed=0)
