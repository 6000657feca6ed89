"""Per-word attributions for one prediction: layer integrated gradients over the word embeddings.

Why integrated gradients (Sundararajan et al., 2017). IG integrates the gradient of the explained
output along the straight path from a baseline input to the real one; its attributions satisfy
*completeness*: they sum to f(input) - f(baseline). The integral is computed numerically, so the gap
between the sum and that difference (Captum's convergence delta) is a measured error of every
explanation, reported with it, rather than an unknown one. IG is also faithful to the model: it reads
the function the model computes, through its gradients, and two models that compute the same function
get the same attributions (implementation invariance). Attention weights are not: they are one
intermediate of one layer, they ignore the value vectors, the residual stream and every later layer,
and different weights can give the same prediction.

Why the word-embedding layer. Token ids are discrete, so there is no path to integrate along in id
space; the first place the input is continuous is the output of the word-embedding lookup. The baseline
is the same sequence with [PAD] in place of every text token (``[CLS]``, ``[SEP]`` kept, the attention
mask unchanged): it differs from the input only in which words are there, not in length, position or
segment, which the position and token-type embeddings, added after this layer, keep equal on the whole
path. So each token's attribution (summed over the hidden dimension) is what that word, rather than
padding, adds to the output; the special tokens get exactly zero.

What is explained: the probability of the target class (the predicted one unless told), through the
same softmax the reported probability comes from; a positive score pushes toward that class. Tokens are
merged back to the whitespace words of the original text through the fast tokenizer's character
offsets, so WordPiece pieces (``un`` ``##profit`` ``##able``) and the pieces BERT's pre-tokenizer
splits off (``AAPL`` ``'`` ``s``) add up to the word the reader sees.

Captum runs the attribution by hooking the embedding layer of the model it is given, for the duration of
the call: a model that another thread scores with at the same time must not be given to it
(``private_copy`` makes a scorer that owns its own weights and tokenizer).
"""

from __future__ import annotations

import bisect
import copy
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from finsent.errors import FinsentError
from finsent.training.cls_forward import logits_module
from finsent.training.score import Scorer
from finsent.vocabulary import visible

WORD = re.compile(r"\S+")


class ExplainError(FinsentError, ValueError):
    """A text or a target that cannot be explained (empty text, unknown class, no fast tokenizer)."""


@dataclass(frozen=True)
class WordScore:
    """One whitespace word of the text, its character span and its attribution toward the label."""

    word: str
    start: int
    end: int
    score: float  # the sum of its tokens' attributions; > 0 pushes toward the label
    tokens: int  # the model tokens it was read as; 0 when truncation cut it off (its score is then 0)


@dataclass(frozen=True)
class Explanation:
    """Why the model gave ``text`` the class ``label``: each word's share of the label's probability.

    ``sum(w.score for w in words) + convergence_delta == baseline_gap``: the words' scores add up to
    how much the text raises the label's probability over the all-[PAD] baseline, to within the
    integration error ``convergence_delta``."""

    text: str
    label: str  # the class explained (the predicted one unless another was asked for)
    predicted: str  # the most probable class
    probability: float  # the label's probability, through the scorer's own (calibrated) probabilities
    probabilities: dict[str, float]
    words: tuple[WordScore, ...]
    baseline_gap: float  # f(text) - f(baseline): the label's probability minus its probability on the baseline
    convergence_delta: float  # sum of the attributions minus baseline_gap (Captum's delta): the integration error
    n_steps: int
    truncated: bool  # the text had more tokens than the model reads (max_length); the rest scores 0
    model_version: str | None = None

    @property
    def relative_delta(self) -> float | None:
        """|convergence_delta| / |baseline_gap|: the integration error as a share of what it splits up;
        None when the gap is 0 (the text scores as the baseline does)."""
        gap = abs(self.baseline_gap)
        return abs(self.convergence_delta) / gap if gap > 0 else None

    def top_words(self, k: int) -> list[WordScore]:
        """The ``k`` words that push most toward the label (positive scores only), strongest first."""
        ranked = sorted((w for w in self.words if w.score > 0), key=lambda w: -w.score)
        return ranked[: max(k, 0)]

    def to_dict(self, top_k: int | None = None) -> dict[str, Any]:
        out = asdict(self)
        out["words"] = [asdict(w) for w in self.words]
        out["relative_delta"] = self.relative_delta
        if top_k is not None:
            out["top_words"] = [w.word for w in self.top_words(top_k)]
        return out


# --- pure parts ---------------------------------------------------------------------------------------


def merge_to_words(text: str, offsets: Sequence[tuple[int, int]], scores: Sequence[float]) -> list[WordScore]:
    """The whitespace words of ``text``, each with the summed ``scores`` of the tokens whose character
    span (``offsets``, from a fast tokenizer) starts inside it. Tokens with an empty span (the special
    tokens) belong to no word; a word no token starts in (cut off by truncation) scores 0."""
    if len(offsets) != len(scores):
        raise ValueError(f"{len(offsets)} offsets but {len(scores)} scores")
    spans = [(m.start(), m.end()) for m in WORD.finditer(text)]
    starts = [s for s, _ in spans]
    totals = [0.0] * len(spans)
    counts = [0] * len(spans)
    for (start, end), score in zip(offsets, scores):
        if end <= start:
            continue
        i = bisect.bisect_right(starts, start) - 1
        if i < 0 or start >= spans[i][1]:
            continue  # a token in white space (none in BERT's tokenizers): no word to give it to
        totals[i] += float(score)
        counts[i] += 1
    return [WordScore(text[s:e], s, e, totals[i], counts[i]) for i, (s, e) in enumerate(spans)]


def without_words(text: str, words: Sequence[WordScore]) -> str:
    """``text`` with the given words (by span) deleted, single spaces between the words left."""
    dropped = {(w.start, w.end) for w in words}
    return " ".join(m.group() for m in WORD.finditer(text) if (m.start(), m.end()) not in dropped)


# --- the attribution ------------------------------------------------------------------------------------


def private_copy(scorer: Scorer) -> Scorer:
    """A scorer with its own copy of the weights and the tokenizer, for attributions beside a thread that
    keeps scoring with ``scorer`` (Captum hooks the embedding layer while it runs; a fast tokenizer's
    truncation setting is state that calls share). The copy needs no parameter gradients: IG takes
    gradients with respect to the embeddings only."""
    twin = copy.copy(scorer)
    twin.model = copy.deepcopy(scorer.model).eval()
    twin.model.requires_grad_(False)
    twin.tokenizer = copy.deepcopy(scorer.tokenizer)
    return twin


def check_text(text: object) -> str:
    """``text`` if it can be explained: a string with something visible in it."""
    if not isinstance(text, str) or not visible(text):
        raise ExplainError("the text to explain is empty (or only spaces and invisible characters)")
    return text


def calibration_map(scorer: Scorer, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The scorer's calibration as ``logits * scale + shift`` in torch, so that the explained output is the
    probability the scorer reports. Every calibration finsent fits (none, temperature, vector) maps each
    class's logit on its own and affinely, so ``Calibration.apply`` at 0 and at 1 gives the map."""
    classes = scorer.model.config.num_labels
    calibration = scorer.calibration
    if calibration.is_identity:
        return torch.ones(classes, device=device), torch.zeros(classes, device=device)
    shift = np.asarray(calibration.apply(np.zeros((1, classes))), dtype=np.float64)[0]
    scale = np.asarray(calibration.apply(np.ones((1, classes))), dtype=np.float64)[0] - shift
    as_tensor = lambda a: torch.tensor(a, dtype=torch.float32, device=device)  # noqa: E731
    return as_tensor(scale), as_tensor(shift)


def _class_index(scorer: Scorer, target: str | int | None, probabilities: np.ndarray) -> int:
    labels = scorer.labels
    if target is None:
        return int(np.argmax(probabilities))
    if isinstance(target, int) and not isinstance(target, bool) and 0 <= target < len(labels):
        return target
    if isinstance(target, str) and target in labels:
        return labels.index(target)
    raise ExplainError(f"unknown class {target!r} to explain; the model's classes are {labels}")


def explain(
    scorer: Scorer,
    text: str,
    *,
    n_steps: int,
    internal_batch_size: int | None = None,
    target: str | int | None = None,
    model_version: str | None = None,
) -> Explanation:
    """The attribution of ``target``'s probability (default: the predicted class) to each word of ``text``.

    ``n_steps`` points of the Gauss-Legendre rule along the path; ``internal_batch_size`` of them per
    forward and backward pass (None: all at once). Runs the model ``n_steps`` times forward and back:
    not on a model another thread is using (see ``private_copy``)."""
    from captum.attr import LayerIntegratedGradients

    check_text(text)
    if n_steps < 1 or (internal_batch_size is not None and internal_batch_size < 1):
        raise ExplainError(f"n_steps ({n_steps}) and internal_batch_size ({internal_batch_size}) must be >= 1")
    tokenizer, model = scorer.tokenizer, scorer.model
    if not getattr(tokenizer, "is_fast", False):
        raise ExplainError(f"explanations need a fast tokenizer (character offsets); {type(tokenizer).__name__} is not one")

    probabilities = scorer.predict_proba([text])[0]  # the scorer's own probabilities: what finsent reports
    index = _class_index(scorer, target, probabilities)

    encoding = tokenizer(
        text,
        truncation=True,
        max_length=scorer.max_length,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    device = next(model.parameters()).device
    input_ids = torch.tensor([encoding["input_ids"]], device=device)
    attention_mask = torch.ones_like(input_ids)
    special = torch.tensor([encoding["special_tokens_mask"]], device=device).bool()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    baseline_ids = torch.where(special, input_ids, torch.full_like(input_ids, pad_id))

    forward = logits_module(model)
    scale, shift = calibration_map(scorer, device)

    def target_probabilities(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.softmax(forward(ids, mask).float() * scale + shift, dim=-1)

    model.eval()
    with torch.enable_grad():
        attributions = LayerIntegratedGradients(target_probabilities, model.get_input_embeddings()).attribute(
            input_ids,
            baselines=baseline_ids,
            target=index,
            additional_forward_args=(attention_mask,),
            n_steps=n_steps,
            internal_batch_size=internal_batch_size,
        )
    # The convergence delta as Captum defines it (sum of the attributions - (f(x) - f(baseline))), with
    # both ends in one pass rather than Captum's two.
    with torch.inference_mode():
        ends = target_probabilities(torch.cat([input_ids, baseline_ids]), attention_mask.expand(2, -1))[:, index].double()
    token_scores = attributions.sum(dim=-1)[0].detach().double().cpu().numpy()
    gap = float(ends[0] - ends[1])
    words = merge_to_words(text, [tuple(o) for o in encoding["offset_mapping"]], token_scores.tolist())
    labels = scorer.labels
    return Explanation(
        text=text,
        label=labels[index],
        predicted=labels[int(np.argmax(probabilities))],
        probability=float(probabilities[index]),
        probabilities={label: float(p) for label, p in zip(labels, probabilities)},
        words=tuple(words),
        baseline_gap=gap,
        convergence_delta=float(token_scores.sum()) - gap,
        n_steps=n_steps,
        truncated=bool(encoding.encodings[0].overflowing),
        model_version=model_version,
    )
