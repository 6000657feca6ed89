"""Tokenise once, then batch by length.

Texts are tokenised in one call of the fast (Rust) tokenizer and kept as id arrays; batches group
texts of similar length so that padding, and the compute spent on it, stays small (dynamic padding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class Encoded:
    """Token ids of many texts stored flat: text ``i`` is ``ids[offsets[i]:offsets[i] + lengths[i]]``."""

    ids: np.ndarray  # int32, all texts concatenated
    offsets: np.ndarray  # int64
    lengths: np.ndarray  # int64
    pad_id: int

    def __len__(self) -> int:
        return len(self.lengths)


def encode_texts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int) -> Encoded:
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length, return_attention_mask=False)["input_ids"]
    lengths = np.fromiter((len(x) for x in encoded), dtype=np.int64, count=len(encoded))
    offsets = np.zeros(len(encoded), dtype=np.int64)
    if len(encoded):
        offsets[1:] = np.cumsum(lengths)[:-1]
    ids = np.fromiter((t for x in encoded for t in x), dtype=np.int32, count=int(lengths.sum()))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Encoded(ids=ids, offsets=offsets, lengths=lengths, pad_id=int(pad_id))


def pad_batch(encoded: Encoded, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad the given rows to the longest among them; returns (input_ids, attention_mask)."""
    lengths = encoded.lengths[rows]
    width = int(lengths.max())
    input_ids = np.full((len(rows), width), encoded.pad_id, dtype=np.int64)
    mask = np.arange(width)[None, :] < lengths[:, None]
    # Gather every kept token position in one vectorised step.
    starts = encoded.offsets[rows]
    positions = starts[:, None] + np.arange(width)[None, :]
    input_ids[mask] = encoded.ids[positions[mask]]
    return torch.from_numpy(input_ids), torch.from_numpy(mask.astype(np.int64))


def length_bucketed_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, bucket_size_in_batches: int = 50
) -> list[np.ndarray]:
    """Shuffled training batches of similar-length texts.

    Shuffle, cut into buckets of ``bucket_size_in_batches`` batches, sort each bucket by length, cut
    it into batches, and shuffle the batches: randomness of an ordinary shuffle, padding of a sort.
    """
    order = rng.permutation(len(lengths))
    bucket = batch_size * bucket_size_in_batches
    batches: list[np.ndarray] = []
    for start in range(0, len(order), bucket):
        chunk = order[start : start + bucket]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)  # type: ignore[arg-type]
    return batches


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Inference batches in length order (longest first, so memory peaks early and visibly)."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
