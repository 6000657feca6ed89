"""Scoring: class probabilities for many texts, fast.

Texts are tokenised in one call, sorted by length and run in batches padded only to the longest text
of each batch; results come back in the input order.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from finsent.features import Encoded, encode_texts, pad_batch, sorted_batches
from finsent.model import autocast_dtype, choose_device, load_classifier


@torch.inference_mode()
def predict_proba_encoded(
    model: PreTrainedModel,
    encoded: Encoded,
    *,
    batch_size: int = 256,
    device: torch.device | None = None,
    precision: str = "auto",
) -> np.ndarray:
    """Softmax probabilities, shape (n, n_classes), in the order of ``encoded``."""
    device = device or next(model.parameters()).device
    amp_dtype = autocast_dtype(device, precision)
    model.eval()
    out = np.zeros((len(encoded), model.config.num_labels), dtype=np.float32)
    for rows in sorted_batches(encoded.lengths, batch_size):
        input_ids, attention_mask = pad_batch(encoded, rows)
        autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
        with autocast:
            logits = model(
                input_ids=input_ids.to(device, non_blocking=True),
                attention_mask=attention_mask.to(device, non_blocking=True),
            ).logits
        out[rows] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return out


class Scorer:
    """A loaded model and its tokenizer, ready to score batches of text."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        model: PreTrainedModel,
        *,
        max_length: int = 128,
        batch_size: int = 256,
        device: str = "auto",
        precision: str = "auto",
    ) -> None:
        self.tokenizer = tokenizer
        self.device = choose_device(device)
        self.model = model.to(self.device).eval()
        self.max_length = max_length
        self.batch_size = batch_size
        self.precision = precision

    @classmethod
    def from_dir(cls, model_dir: str | Path, **kwargs) -> "Scorer":
        tokenizer, model = load_classifier(str(model_dir), for_training=False)
        return cls(tokenizer, model, **kwargs)

    @property
    def labels(self) -> list[str]:
        return [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]

    def encode(self, texts: Sequence[str]) -> Encoded:
        return encode_texts(self.tokenizer, texts, self.max_length)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.model.config.num_labels), dtype=np.float32)
        return predict_proba_encoded(
            self.model, self.encode(texts), batch_size=self.batch_size, device=self.device, precision=self.precision
        )
