"""Data-parallel training: two gloo processes under torchrun train the same model as one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from finsent.config import TrainParams
from finsent.data.frames import stratified_sample
from finsent.training.train import shard

SRC = Path(__file__).resolve().parents[2] / "src"

# 199 rows in batches of 33: six batches split 17/16 between two processes (unequal shards), and a
# last batch of one row, which leaves the second process an empty shard.
ROWS, BATCH = 199, 33


def no_dropout_bert(tokenizer):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, num_labels=3,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,  # dropout masks differ between processes
    )
    return BertForSequenceClassification(config)


@pytest.fixture(autouse=True)
def one_thread():
    """Like each torchrun worker (OMP_NUM_THREADS=1): on a busy machine, spinning OpenMP threads
    waiting for a descheduled peer make tiny models many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ddp_setup(tmp_path_factory, tokenizer, tfns_train, tfns_valid):
    root = tmp_path_factory.mktemp("ddp")
    base = root / "base"
    no_dropout_bert(tokenizer).save_pretrained(base)
    tokenizer.save_pretrained(base)
    stratified_sample(tfns_train, ROWS, 0)[["text", "label"]].to_csv(root / "train.csv", index=False)
    stratified_sample(tfns_valid, 90, 0)[["text", "label"]].to_csv(root / "dev.csv", index=False)
    settings = dict(
        base_model=str(base), batch_size=BATCH, epochs=2.0, learning_rate=1e-3, warmup_fraction=0.0,
        grad_clip=1.0, device="cpu", progress=False, checkpoint_every_minutes=0.0, max_length=64,
    )
    (root / "params.yaml").write_text(yaml.safe_dump({"train": settings}))
    return root, TrainParams(**settings)


def test_two_gloo_processes_match_one_process(ddp_setup):
    from finsent.training.model import load_classifier
    from finsent.training.train import run

    root, p = ddp_setup
    single = run(p, root / "train.csv", root / "single", log=lambda _: None, dev_path=root / "dev.csv")

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "finsent.training.distributed", "--params", str(root / "params.yaml"),
        "--train", str(root / "train.csv"), "--dev", str(root / "dev.csv"), "--out", str(root / "ddp"),
    ]
    done = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]

    summary = json.loads((root / "ddp" / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == single.steps == 14
    assert not (root / "ddp" / "checkpoint.pt").exists()
    # Both processes score the whole dev split and agree on the weights to keep; only rank 0 reports.
    assert [h["step"] for h in summary["dev_history"]] == [h["step"] for h in single.dev_history] == [7, 14]
    assert summary["selected"]["step"] == single.selected["step"]
    assert summary["dev_macro_f1"] == pytest.approx(single.dev_macro_f1, abs=1e-6)
    assert done.stdout.count("dev macro-F1") == 2
    _, base = load_classifier(str(p.base_model), for_training=False)
    _, one = load_classifier(single.model_dir, for_training=False)
    _, two = load_classifier(str(root / "ddp" / "model"), for_training=False)
    base_sd, one_sd, two_sd = base.state_dict(), one.state_dict(), two.state_dict()
    moved = max(float((one_sd[k] - base_sd[k]).abs().max()) for k in one_sd)
    differ = max(float((one_sd[k] - two_sd[k]).abs().max()) for k in one_sd)
    assert moved > 5e-3  # training changed the weights, so agreement below means something
    # Float noise is ~1e-7; a per-shard mean averaged over processes (unequal shards) is off by ~3e-3.
    assert differ < 1e-5, f"DDP and single-process weights differ by {differ}"


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
