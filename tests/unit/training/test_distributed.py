"""Data-parallel training in one process: how a batch is sharded over processes, and that the
shards' scaled gradients average to the whole batch's. (Under torchrun: tests/integration/test_ddp.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from finsent.training.train import shard
from testkit.tiny_bert import NO_DROPOUT, tiny_bert

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def no_dropout_bert(tokenizer):
    return tiny_bert(tokenizer, **NO_DROPOUT)  # dropout masks differ between processes


def test_sharded_loss_gradients_equal_the_whole_batch_mean(tokenizer):
    """What DDP computes (the mean over processes of each shard's gradient) is the gradient of the
    whole batch's mean loss, with unequal and with empty shards."""
    from finsent.training.features import encode_texts, pad_batch

    model = no_dropout_bert(tokenizer)
    texts = [f"shares {w} after results" for w in ["jump", "fall", "hold", "soar", "sink"] * 7][:33]
    encoded = encode_texts(tokenizer, texts, 32)
    labels = torch.as_tensor(np.arange(len(texts)) % 3)

    def grads(rows: np.ndarray, scale: float | None) -> torch.Tensor:
        model.zero_grad()
        ids, mask = pad_batch(encoded, rows)
        logits = model(input_ids=ids, attention_mask=mask).logits
        loss = torch.nn.functional.cross_entropy(logits, labels[rows], reduction="mean" if scale is None else "sum")
        (loss if scale is None else loss * scale).backward()
        return torch.cat([t.grad.flatten() for t in model.parameters() if t.grad is not None]).clone()

    for batch in (np.arange(33), np.arange(1)):
        whole = grads(batch, None)
        world = 2
        averaged = sum(grads(*shard(batch, rank, world)) for rank in range(world)) / world
        torch.testing.assert_close(averaged, whole, rtol=1e-4, atol=1e-6)
    # The per-shard mean that DDP would average without the scaling is not the batch mean.
    naive = sum(grads(np.arange(33)[r::2], None) for r in range(2)) / 2
    assert not torch.allclose(naive, grads(np.arange(33), None), rtol=1e-4, atol=1e-6)


def test_shard_splits_rows_across_processes():
    batch = np.arange(5)
    assert [shard(batch, r, 2)[0].tolist() for r in range(2)] == [[0, 2, 4], [1, 3]]
    rows, scale = shard(batch, 0, 1)
    assert rows.tolist() == [0, 1, 2, 3, 4] and scale == pytest.approx(1 / 5)
    assert [shard(batch, r, 2)[1] for r in range(2)] == [pytest.approx(2 / 5)] * 2
    rows, scale = shard(np.arange(1), 1, 2)
    assert len(rows) == 1 and scale == 0.0  # joins the all-reduce, adds nothing


def test_distributed_entry_point_refuses_to_run_outside_torchrun(monkeypatch):
    from finsent.training.distributed import main

    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(SystemExit, match="torchrun"):
        main(["--train", "x.csv", "--out", "y"])
