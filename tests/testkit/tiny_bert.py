"""The one tiny random BERT of the tests: 2 layers, hidden 32, 2 heads, intermediate 64, 3 labels,
over the vocabulary of the packaged MiniLM tokenizer. It trains and scores in seconds on a CPU.

A test that needs another shape, or no dropout, says so with BertConfig keyword arguments."""

from __future__ import annotations

from pathlib import Path

from finsent.config import PLAIN_FINE_TUNE

SHAPE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=128, num_labels=3)
# Dropout off: the same weights give the same outputs in training mode (gradient and DDP comparisons).
NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
# Training settings for this model: FGM off. train.fgm_epsilon (1.0) is sized to MiniLM's word-embedding
# rows (norm ~1.07); this model's are ~0.11 (std 0.02, 32 wide), which that step swamps: the toy tasks
# stop being learned. Tests of FGM itself set their own, smaller epsilon.
TINY_RECIPE = dict(PLAIN_FINE_TUNE)


def minilm_tokenizer():
    """The packaged MiniLM tokenizer (offline)."""
    from transformers import AutoTokenizer

    from finsent.training.model import packaged_encoder_path

    return AutoTokenizer.from_pretrained(packaged_encoder_path())


def tiny_bert_config(tokenizer, **overrides):
    from transformers import BertConfig

    return BertConfig(vocab_size=tokenizer.vocab_size, **{**SHAPE, **overrides})


def tiny_bert(tokenizer, seed: int = 0, **overrides):
    """A freshly initialised tiny BERT for sequence classification, its weights fixed by ``seed``;
    ``overrides`` change BertConfig fields of SHAPE (or add others, e.g. NO_DROPOUT)."""
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    return BertForSequenceClassification(tiny_bert_config(tokenizer, **overrides))


def save_tiny_bert(path: Path, tokenizer, seed: int = 0, **overrides) -> Path:
    """The tiny BERT and its tokenizer saved in ``path`` like a hub model; returns ``path``."""
    tiny_bert(tokenizer, seed, **overrides).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
