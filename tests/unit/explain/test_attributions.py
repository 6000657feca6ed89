"""Integrated-gradients explanations on the tiny BERT: words merged from WordPiece pieces, completeness
(the scores add up to f(text) - f(baseline) within the reported delta), the calibrated probability,
truncation, and the HTML view's escaping."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from finsent.explain.attributions import ExplainError, WordScore, calibration_map, explain, merge_to_words, private_copy, without_words
from finsent.explain.html import explanation_html
from finsent.training.calibration import Calibration
from finsent.training.score import Scorer
from testkit.keyword_task import keyword_scorer


def test_wordpiece_pieces_and_split_punctuation_merge_back_to_whitespace_words(tokenizer):
    text = "AAPL's  unprofitability\tsoars, 5%"
    encoding = tokenizer(text, return_offsets_mapping=True)
    pieces = tokenizer.convert_ids_to_tokens(encoding["input_ids"])
    assert any(p.startswith("##") for p in pieces) and "'" in pieces  # the cases this test is about
    # Each token scores 1: a word's score is then the number of tokens it was read as.
    words = merge_to_words(text, encoding["offset_mapping"], [1.0] * len(pieces))
    assert [w.word for w in words] == ["AAPL's", "unprofitability", "soars,", "5%"]
    assert [(w.start, w.end) for w in words] == [(0, 6), (8, 23), (24, 30), (31, 33)]
    assert all(text[w.start : w.end] == w.word for w in words)
    assert [w.score for w in words] == [float(w.tokens) for w in words]
    assert sum(w.tokens for w in words) == len(pieces) - 2  # every piece but [CLS] and [SEP]
    unprofitability = [p for p, (s, e) in zip(pieces, encoding["offset_mapping"]) if 8 <= s < 23]
    assert words[1].tokens == len(unprofitability) > 1 and unprofitability[1].startswith("##")


def test_merge_ignores_special_tokens_and_scores_words_no_token_reached_zero():
    text = "alpha beta gamma"
    offsets = [(0, 0), (0, 3), (3, 5), (6, 10), (0, 0)]  # [CLS] al ##pha beta [SEP]; gamma cut off
    words = merge_to_words(text, offsets, [9.0, 0.5, 0.25, -1.0, 9.0])
    assert words == [WordScore("alpha", 0, 5, 0.75, 2), WordScore("beta", 6, 10, -1.0, 1), WordScore("gamma", 11, 16, 0.0, 0)]
    with pytest.raises(ValueError):
        merge_to_words(text, offsets, [1.0])


def test_without_words_drops_by_position_not_by_spelling():
    words = merge_to_words("up up and away", [(0, 2), (3, 5), (6, 9), (10, 14)], [1.0, 2.0, 3.0, 4.0])
    assert without_words("up up and away", [words[1]]) == "up and away"
    assert without_words("up up and away", []) == "up up and away"


def probabilities_at_both_ends(scorer: Scorer, text: str) -> np.ndarray:
    """The scorer's calibrated probabilities of ``text`` and of its all-[PAD] baseline ([CLS], [SEP] kept),
    computed here through HF's own forward, apart from the explainer: shape (2, classes)."""
    tokenizer = scorer.tokenizer
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    baseline = torch.where((ids == tokenizer.cls_token_id) | (ids == tokenizer.sep_token_id), ids, tokenizer.pad_token_id)
    both = torch.cat([ids, baseline])
    with torch.inference_mode():
        logits = scorer.model(input_ids=both, attention_mask=torch.ones_like(both)).logits.numpy()
    return scorer.calibration.probabilities(logits)


def test_completeness_on_the_tiny_model():
    scorer = keyword_scorer()
    text = "the bank said shares plunge after the report"
    e = explain(scorer, text, n_steps=50)
    assert (e.label, e.predicted) == ("bearish", "bearish")
    f_text, f_baseline = probabilities_at_both_ends(scorer, text)[:, 0]
    total = sum(w.score for w in e.words)
    # Completeness: the word scores add up to f(text) - f(baseline), to within the reported delta ...
    assert e.baseline_gap == pytest.approx(f_text - f_baseline, abs=1e-5)
    assert total - (f_text - f_baseline) == pytest.approx(e.convergence_delta, abs=1e-5)
    # ... and that delta is small against what was split up.
    assert abs(e.baseline_gap) > 0.1 and e.relative_delta is not None and e.relative_delta < 0.02, e
    assert e.probability == pytest.approx(float(scorer.predict_proba([text])[0][0]), abs=1e-6)
    assert max(e.words, key=lambda w: w.score).word == "plunge"
    assert e.top_words(2)[0].word == "plunge" and all(w.score > 0 for w in e.top_words(20))
    assert e.to_dict(top_k=1)["top_words"] == ["plunge"]


def test_more_steps_shrink_the_convergence_delta_which_is_captums():
    from captum.attr import LayerIntegratedGradients

    scorer = keyword_scorer()
    text = "investors plan a deal as sales surge this quarter"
    coarse, fine = (explain(scorer, text, n_steps=n) for n in (2, 64))
    assert coarse.baseline_gap == pytest.approx(fine.baseline_gap, abs=1e-6)
    assert abs(fine.convergence_delta) < abs(coarse.convergence_delta)
    # The same delta as Captum's own, on HF's forward.
    tokenizer, model = scorer.tokenizer, scorer.model
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    baseline = torch.where((ids == tokenizer.cls_token_id) | (ids == tokenizer.sep_token_id), ids, tokenizer.pad_token_id)
    probabilities = lambda i, m: torch.softmax(model(input_ids=i, attention_mask=m).logits, dim=-1)  # noqa: E731
    _, delta = LayerIntegratedGradients(probabilities, model.get_input_embeddings()).attribute(
        ids, baselines=baseline, target=1, additional_forward_args=(torch.ones_like(ids),), n_steps=2, return_convergence_delta=True
    )
    assert coarse.label == "bullish" and coarse.convergence_delta == pytest.approx(float(delta[0]), abs=1e-5)


@pytest.mark.parametrize(
    "calibration",
    [Calibration(kind="temperature", temperature=2.5), Calibration(kind="vector", weights=(0.5, 1.5, 1.0), bias=(0.3, -0.2, -0.1))],
)
def test_the_explained_probability_is_the_calibrated_one(calibration):
    trained = keyword_scorer()
    scorer = Scorer(trained.tokenizer, trained.model, max_length=trained.max_length, device="cpu", calibration=calibration)
    text = "the board said the price may surge"
    e = explain(scorer, text, n_steps=32)
    index = scorer.labels.index(e.label)
    assert e.probability == pytest.approx(float(scorer.predict_proba([text])[0][index]), abs=1e-6)
    # The explained function is the calibrated probability: f(text) - f(baseline) through the calibration.
    f_text, f_baseline = probabilities_at_both_ends(scorer, text)[:, index]
    assert e.baseline_gap == pytest.approx(f_text - f_baseline, abs=1e-5) and f_text == pytest.approx(e.probability, abs=1e-5)
    scale, shift = calibration_map(scorer, torch.device("cpu"))
    assert np.allclose(scale.numpy() * 3.0 + shift.numpy(), calibration.apply(np.full((1, 3), 3.0))[0], atol=1e-6)


def test_another_class_can_be_explained_and_bad_requests_say_why():
    scorer = keyword_scorer()
    e = explain(scorer, "shares plunge", n_steps=16, target="bullish", model_version="7")
    assert (e.label, e.predicted, e.model_version) == ("bullish", "bearish", "7")
    assert min(e.words, key=lambda w: w.score).word == "plunge"  # it speaks against bullish
    with pytest.raises(ExplainError, match="unknown class"):
        explain(scorer, "shares plunge", n_steps=8, target="sideways")
    for empty in ("", "  \u200b "):
        with pytest.raises(ExplainError, match="empty"):
            explain(scorer, empty, n_steps=8)
    with pytest.raises(ExplainError, match="n_steps"):
        explain(scorer, "shares plunge", n_steps=0)


def test_words_past_the_models_limit_score_zero():
    trained = keyword_scorer()
    scorer = copy.copy(trained)
    scorer.max_length = 8
    e = explain(scorer, "the bank said shares surge after the report on sales today", n_steps=8)
    assert e.truncated and len(e.words) == 11
    assert [w.tokens for w in e.words[6:]] == [0] * 5 and all(w.score == 0.0 for w in e.words[6:])
    assert not explain(trained, "shares surge", n_steps=8).truncated


def test_a_private_copy_explains_alike_and_leaves_the_original_unhooked():
    scorer = keyword_scorer()
    twin = private_copy(scorer)
    assert twin.model is not scorer.model and twin.tokenizer is not scorer.tokenizer
    assert twin.calibration is scorer.calibration and twin.max_length == scorer.max_length
    assert next(scorer.model.parameters()).requires_grad  # the original is untouched
    text = "quarter sales surge at the bank"
    a, b = explain(twin, text, n_steps=16), explain(scorer, text, n_steps=16)
    assert [w.score for w in a.words] == pytest.approx([w.score for w in b.words], abs=1e-6)
    embeddings = scorer.model.get_input_embeddings()
    assert not embeddings._forward_hooks and not embeddings._forward_pre_hooks  # Captum's hooks are gone


def test_the_html_view_escapes_every_text_and_colours_by_sign():
    scorer = keyword_scorer()
    text = 'shares <script>alert("x")</script> & plunge'
    e = explain(scorer, text, n_steps=16, model_version="<b>9</b>")
    page = explanation_html(e)
    assert "<script>" not in page and "<b>9" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page and ">&amp;</span>" in page and "&lt;b&gt;9&lt;/b&gt;" in page
    assert page.count('class="w"') == len(e.words) == 4
    assert "rgba(220, 38, 38, 1.000)" in page  # the strongest word toward the label, fully red
    assert "http" not in page and "src=" not in page  # self-contained
    negative = [w for w in e.words if w.score < 0]
    if negative:
        assert "rgba(37, 99, 235," in page
