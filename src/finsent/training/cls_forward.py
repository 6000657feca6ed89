"""The forward pass of BERT-architecture classifiers, computing only what the logits need.

A sequence classifier reads one position of the last layer: [CLS]. HF's forward still runs that layer
for every token. Here the last layer projects keys and values for every token but queries, the
attention output and the feed-forward block for [CLS] alone, which skips about 5/6 of the last
layer: about 14% of a 6-layer encoder's compute, in scoring and in training alike (the loss never
reads the other positions, so their gradients are zero anyway). Same weights, same operations, same
logits and gradients to float rounding (tests/unit/training/test_cls_forward.py); the rest is the layer
arithmetic of ``transformers.models.bert``, dropout included in training mode.

Mean pooling (``train.pooling: mean``): the head reads the mean of the last layer's unpadded tokens
instead of [CLS], through the same pooler and classifier weights. all-MiniLM-L6-v2 was trained to give
that mean as its sentence vector (sentence-transformers); its [CLS] was never trained for one. The
last layer then runs for every token. The choice is saved in the model's ``config.json``
(``finsent_pooling``: HF keeps unknown config keys), so finsent's scoring, serving and explanations,
which all go through ``logits_module``, read it. HF's own forward ignores it: a mean-pooled model is
scored through finsent (its MLflow pyfunc), not through a bare ``pipeline``.

``logits_module(model)`` wraps a model as a module that maps (input_ids, attention_mask) to logits:
this path for BERT classifiers, HF's own forward for anything else. DDP and torch.compile wrap it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from finsent.config import POOLINGS
from finsent.training.model import ModelError

POOLING_KEY = "finsent_pooling"  # the model config's key; absent: "cls", HF's own head


def supports(model: PreTrainedModel) -> bool:
    """A ``BertForSequenceClassification`` with absolute positions, a pooler, and an encoder only."""
    config = model.config
    return (
        type(model).__name__ == "BertForSequenceClassification"
        and getattr(config, "position_embedding_type", "absolute") == "absolute"
        and not getattr(config, "is_decoder", False)
        and getattr(model.bert, "pooler", None) is not None
        and getattr(config, "problem_type", None) in {None, "single_label_classification"}
    )


def pooling_of(model: PreTrainedModel) -> str:
    """The vector ``model``'s head reads, as its config says. Refused: a value finsent does not know, and
    mean pooling on a model other than a BERT classifier (HF's forward would read [CLS] instead)."""
    pooling = getattr(model.config, POOLING_KEY, "cls")
    if pooling not in POOLINGS:
        raise ModelError(f"the model's config says {POOLING_KEY}={pooling!r}; finsent reads one of {', '.join(POOLINGS)}")
    if pooling == "mean" and not supports(model):
        raise ModelError(f"{type(model).__name__} is marked {POOLING_KEY}='mean', which only BERT classifiers implement")
    return pooling


def set_pooling(model: PreTrainedModel, pooling: str) -> None:
    """Make ``model``'s head read ``pooling`` ("cls" or "mean"), in its config: saved with it."""
    if pooling not in POOLINGS:
        raise ModelError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    if pooling != "cls" and not supports(model):
        raise ModelError(f"train.pooling {pooling!r} needs a BERT classifier; {type(model).__name__} reads its own head")
    setattr(model.config, POOLING_KEY, pooling)


def cls_logits(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The classifier's logits for right-padded ``input_ids`` (batch, width); dropout as the model's
    mode says (train or eval). The head reads [CLS], or the tokens' mean when the model pools by mean."""
    bert, config = model.bert, model.config
    mean_pooled = pooling_of(model) == "mean"
    batch, width = input_ids.shape
    heads = config.num_attention_heads
    head_dim = config.hidden_size // heads

    emb = bert.embeddings
    hidden = emb.word_embeddings(input_ids) + emb.position_embeddings.weight[:width] + emb.token_type_embeddings.weight[0]
    hidden = emb.dropout(emb.LayerNorm(hidden))
    attention_dropout = config.attention_probs_dropout_prob if model.training else 0.0
    keep = attention_mask.bool()[:, None, None, :]  # (batch, 1, 1, width): which keys each query may see

    def split(x: torch.Tensor) -> torch.Tensor:  # (batch, tokens, hidden) -> (batch, heads, tokens, head_dim)
        return x.view(batch, -1, heads, head_dim).transpose(1, 2)

    layers = bert.encoder.layer
    for index, layer in enumerate(layers):
        last_reads_cls_only = index == len(layers) - 1 and not mean_pooled
        queries_from = hidden[:, :1] if last_reads_cls_only else hidden
        attention = layer.attention
        context = F.scaled_dot_product_attention(
            split(attention.self.query(queries_from)),
            split(attention.self.key(hidden)),
            split(attention.self.value(hidden)),
            attn_mask=keep,
            dropout_p=attention_dropout,
        )
        context = context.transpose(1, 2).reshape(batch, -1, config.hidden_size)
        attended = attention.output.LayerNorm(attention.output.dropout(attention.output.dense(context)) + queries_from)
        feed_forward = layer.output.dropout(layer.output.dense(layer.intermediate(attended)))
        hidden = layer.output.LayerNorm(feed_forward + attended)
    return head_logits(model, hidden, attention_mask)


def head_logits(model: PreTrainedModel, last_hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The head on the last layer's states (batch, tokens, hidden), read as the model pools: [CLS]
    (position 0, all that ``cls_logits`` computes) or the mean of the unpadded tokens."""
    if pooling_of(model) == "mean":  # sentence-transformers' mean: every unpadded token, [CLS] and [SEP] included
        kept = attention_mask.unsqueeze(-1).to(last_hidden.dtype)
        sentence = (last_hidden * kept).sum(1) / kept.sum(1).clamp(min=1.0)
        pooled = model.bert.pooler.activation(model.bert.pooler.dense(sentence))
    else:
        pooled = model.bert.pooler(last_hidden)
    return model.classifier(model.dropout(pooled))


class ClsOnly(torch.nn.Module):
    """``cls_logits`` as a module (what DDP and torch.compile wrap)."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return cls_logits(self.model, input_ids, attention_mask)


class FullForward(torch.nn.Module):
    """HF's own forward, returning the logits tensor."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def logits_module(model: PreTrainedModel) -> torch.nn.Module:
    pooling_of(model)  # a head finsent cannot read fails here, before the first batch
    return ClsOnly(model) if supports(model) else FullForward(model)
