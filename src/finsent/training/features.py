"""Tokenise once, then batch by length.

Texts are tokenised in one call of the fast (Rust) tokenizer and kept as id arrays; batches group
texts of similar length so that padding, and the compute spent on it, stays small (dynamic padding).
On a GPU the id arrays are copied to the device once (``to_device``) and every batch is gathered
there (``gather_batch``), so a training or scoring step does no host-side tensor work.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

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


def _token_ids(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int) -> list[list[int]]:
    backend = getattr(tokenizer, "backend_tokenizer", None)  # None for a pure-Python tokenizer
    if backend is None:
        return tokenizer(texts, truncation=True, max_length=max_length, return_attention_mask=False)["input_ids"]
    # The Rust tokenizer directly: the same ids as ``tokenizer(texts, truncation=True)`` (HF sets the
    # same truncation on this backend), without building offsets, masks and per-text dicts in Python,
    # which cost more than the tokenising itself.
    backend.enable_truncation(max_length)
    if backend.padding is not None:
        backend.no_padding()
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    return [e.ids for e in encode(texts, add_special_tokens=True)]


def encode_texts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int) -> Encoded:
    texts = list(texts)
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"text {bad} is {type(texts[bad]).__name__} {texts[bad]!r}, not a string")
    encoded = _token_ids(tokenizer, texts, max_length) if texts else []
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    offsets = np.zeros(len(encoded), dtype=np.int64)
    if len(encoded):
        offsets[1:] = np.cumsum(lengths)[:-1]
    ids = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int32, count=int(lengths.sum()))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Encoded(ids=ids, offsets=offsets, lengths=lengths, pad_id=int(pad_id))


def padded_width(lengths: np.ndarray, multiple: int = 1) -> int:
    """The longest of ``lengths``, rounded up to a multiple (8 suits GPU tensor cores and keeps the
    number of distinct shapes small for ``torch.compile``)."""
    width = int(lengths.max())
    return -(-width // multiple) * multiple


def pad_batch(encoded: Encoded, rows: np.ndarray, pad_to_multiple_of: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad the given rows to the longest among them; returns (input_ids, attention_mask)."""
    lengths = encoded.lengths[rows]
    width = padded_width(lengths, pad_to_multiple_of)
    input_ids = np.full((len(rows), width), encoded.pad_id, dtype=np.int64)
    mask = np.arange(width)[None, :] < lengths[:, None]
    # Gather every kept token position in one vectorised step.
    starts = encoded.offsets[rows]
    positions = starts[:, None] + np.arange(width)[None, :]
    input_ids[mask] = encoded.ids[positions[mask]]
    return torch.from_numpy(input_ids), torch.from_numpy(mask.astype(np.int64))


@dataclass(frozen=True)
class DeviceEncoded:
    """``Encoded`` as tensors on one device; ``lengths`` stays on the host too, so that batch widths
    are known without waiting for the device."""

    ids: torch.Tensor  # int64, flat
    offsets: torch.Tensor
    lengths: torch.Tensor
    host_lengths: np.ndarray
    pad_id: int

    def __len__(self) -> int:
        return len(self.host_lengths)


def to_device(encoded: Encoded, device: torch.device | str) -> DeviceEncoded:
    as_tensor = lambda a: torch.from_numpy(a).to(device).long()  # noqa: E731  (ids cross as int32)
    ids = encoded.ids if len(encoded.ids) else np.zeros(1, dtype=np.int32)  # gather_batch clamps into it
    return DeviceEncoded(
        ids=as_tensor(ids),
        offsets=as_tensor(encoded.offsets),
        lengths=as_tensor(encoded.lengths),
        host_lengths=encoded.lengths,
        pad_id=encoded.pad_id,
    )


def gather_batch(tokens: DeviceEncoded, rows: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``pad_batch`` on the device: ``rows`` is a long tensor on ``tokens``' device and ``width`` at
    least the longest of them (see ``padded_width``)."""
    positions = torch.arange(width, device=rows.device)
    mask = positions[None, :] < tokens.lengths[rows][:, None]
    index = (tokens.offsets[rows][:, None] + positions[None, :]).clamp_(max=len(tokens.ids) - 1)
    input_ids = torch.where(mask, tokens.ids[index], tokens.pad_id)
    return input_ids, mask.long()


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
    rng.shuffle(batches)
    return batches


def sorted_batches(lengths: np.ndarray, batch_size: int, max_tokens: int | None = None) -> list[np.ndarray]:
    """Inference batches in length order (longest first, so memory peaks early and visibly), of at
    most ``batch_size`` rows and, if given, at most ``max_tokens`` padded tokens (at least one row)."""
    order = np.argsort(-lengths, kind="stable")
    if max_tokens is None:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches, start = [], 0
    while start < len(order):
        rows = min(batch_size, max(1, max_tokens // int(lengths[order[start]])))  # its first row is its widest
        batches.append(order[start : start + rows])
        start += rows
    return batches
