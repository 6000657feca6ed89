"""Scoring: class probabilities for many texts, fast.

Texts are tokenised in one call, copied to the device once, sorted by length and run in batches padded
only to the longest text of each batch; results come back in the input order, in one transfer. BERT
classifiers skip the last layer's positions that the logits never read (``finsent.cls_forward``).

A ``Scorer`` applies the calibration saved with its model (``calibration.json``, see
``finsent.training.calibration``) to the logits before the softmax, so every probability finsent
writes is calibrated; a model saved without one scores exactly as it always did.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from finsent.training.calibration import IDENTITY, Calibration, load_calibration
from finsent.training.cls_forward import logits_module, pooling_of
from finsent.training.features import Encoded, encode_texts, gather_batch, sorted_batches, to_device
from finsent.training.model import autocast_dtype, choose_device, load_classifier

# On CPU, batches of at most this many padded tokens run fastest (MiniLM on 2 AVX-512 cores, idle
# machine, median of 3: 280 texts/s at 4,096 against 237 at 1,024 and 238 at 16,384). GPUs want big batches.
CPU_MAX_BATCH_TOKENS = 4096
# On CPU, bf16 autocast pays from two texts a pass. A trained MiniLM on 2 cores with bf16 units, texts/s
# fp32 -> bf16 (bench/results/precision_cpu.json): 157 -> 205 at 4, 179 -> 383 at 16; before this rule
# the same bench gave 102 -> 90 at 1 text, and a one-off timing 121 -> 135 at 2. So a lone text (the
# live service's passes at low load) runs in fp32.
CPU_BF16_MIN_TEXTS = 2


@torch.inference_mode()
def _logits(
    model: PreTrainedModel, encoded: Encoded, batch_size: int, device: torch.device | None, precision: str, max_tokens: int | None
) -> torch.Tensor:
    """The logits (float32, on the model's device), shape (n, n_classes), in the order of ``encoded``."""
    device = device or next(model.parameters()).device
    if max_tokens is None and device.type == "cpu":
        max_tokens = CPU_MAX_BATCH_TOKENS
    amp_dtype = autocast_dtype(device, precision)
    if device.type == "cpu" and len(encoded) < CPU_BF16_MIN_TEXTS:
        amp_dtype = None
    model.eval()
    if len(encoded) == 0:
        return torch.zeros((0, model.config.num_labels), dtype=torch.float32, device=device)
    tokens = to_device(encoded, device)
    batches = sorted_batches(encoded.lengths, batch_size, max_tokens)  # longest first: width of the first row
    order = torch.from_numpy(np.concatenate(batches)).to(device)
    forward = logits_module(model)  # BERT: the same logits without the last layer's unread positions
    logits = torch.empty((len(encoded), model.config.num_labels), dtype=torch.float32, device=device)
    # One autocast region around all batches, so the low-precision copies of the weights are made once.
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
    with autocast:
        start = 0
        for host_rows in batches:
            rows = order[start : start + len(host_rows)]
            start += len(host_rows)
            input_ids, attention_mask = gather_batch(tokens, rows, int(encoded.lengths[host_rows[0]]))
            logits[rows] = forward(input_ids, attention_mask).float()
    return logits


def predict_logits_encoded(
    model: PreTrainedModel,
    encoded: Encoded,
    *,
    batch_size: int = 256,
    device: torch.device | None = None,
    precision: str = "auto",
    max_tokens: int | None = None,
) -> np.ndarray:
    """Raw logits (float32), shape (n, n_classes), in the order of ``encoded``: what calibration is fitted on."""
    return _logits(model, encoded, batch_size, device, precision, max_tokens).cpu().numpy()


@torch.inference_mode()
def predict_proba_encoded(
    model: PreTrainedModel,
    encoded: Encoded,
    *,
    batch_size: int = 256,
    device: torch.device | None = None,
    precision: str = "auto",
    max_tokens: int | None = None,
    calibration: Calibration = IDENTITY,
) -> np.ndarray:
    """Class probabilities (float32), shape (n, n_classes), in the order of ``encoded``: the softmax of
    the logits after ``calibration``. Batches hold at most ``batch_size`` texts and ``max_tokens``
    padded tokens (default: ``CPU_MAX_BATCH_TOKENS`` on CPU)."""
    logits = _logits(model, encoded, batch_size, device, precision, max_tokens)
    if calibration.is_identity:  # the softmax of old: the same numbers a model saved before calibration gave
        return torch.softmax(logits, dim=-1).cpu().numpy()
    return calibration.probabilities(logits.cpu().numpy()).astype(np.float32)


class Scorer:
    """A loaded model, its tokenizer and its calibration, ready to score batches of text."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        model: PreTrainedModel,
        *,
        max_length: int = 128,
        batch_size: int = 256,
        device: str = "auto",
        precision: str = "auto",
        calibration: Calibration = IDENTITY,
    ) -> None:
        pooling_of(model)  # a head finsent cannot read (finsent_pooling) fails at load, not at each request
        self.tokenizer = tokenizer
        self.device = choose_device(device)
        self.model = model.to(self.device).eval()
        self.max_length = max_length
        self.batch_size = batch_size
        self.precision = precision
        self.calibration = calibration

    @classmethod
    def from_dir(cls, model_dir: str | Path, **kwargs) -> Scorer:
        """The model saved in ``model_dir`` with its ``calibration.json`` (the identity when it has none)."""
        tokenizer, model = load_classifier(str(model_dir), for_training=False)
        kwargs.setdefault("calibration", load_calibration(model_dir))
        return cls(tokenizer, model, **kwargs)

    @property
    def labels(self) -> list[str]:
        return [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]

    def encode(self, texts: Sequence[str]) -> Encoded:
        return encode_texts(self.tokenizer, texts, self.max_length)

    def predict_logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw logits, before calibration (evaluation reports both)."""
        if len(texts) == 0:
            return np.zeros((0, self.model.config.num_labels), dtype=np.float32)
        return predict_logits_encoded(
            self.model, self.encode(texts), batch_size=self.batch_size, device=self.device, precision=self.precision
        )

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated class probabilities, shape (n, n_classes)."""
        if len(texts) == 0:
            return np.zeros((0, self.model.config.num_labels), dtype=np.float32)
        return predict_proba_encoded(
            self.model,
            self.encode(texts),
            batch_size=self.batch_size,
            device=self.device,
            precision=self.precision,
            calibration=self.calibration,
        )
