"""Data-parallel training: two gloo processes under torchrun train the same model as one process.
(What each process computes, in one process: tests/unit/training/test_distributed.py.)"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from finsent.config import TrainParams
from finsent.data.frames import stratified_sample
from testkit.tiny_bert import NO_DROPOUT, save_tiny_bert
from testkit.torchrun import two_process_training

SRC = Path(__file__).resolve().parents[2] / "src"

# 199 rows in batches of 33: six batches split 17/16 between two processes (unequal shards), and a
# last batch of one row, which leaves the second process an empty shard.
ROWS, BATCH = 199, 33

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def ddp_setup(tmp_path_factory, tokenizer, tfns_train, tfns_valid):
    root = tmp_path_factory.mktemp("ddp")
    base = root / "base"
    save_tiny_bert(base, tokenizer, **NO_DROPOUT)  # dropout masks differ between processes
    stratified_sample(tfns_train, ROWS, 0)[["text", "label"]].to_csv(root / "train.csv", index=False)
    stratified_sample(tfns_valid, 90, 0)[["text", "label"]].to_csv(root / "dev.csv", index=False)
    settings = dict(
        base_model=str(base),
        batch_size=BATCH,
        epochs=2.0,
        learning_rate=1e-3,
        warmup_fraction=0.0,
        grad_clip=1.0,
        device="cpu",
        progress=False,
        checkpoint_every_minutes=0.0,
        max_length=64,
    )
    (root / "params.yaml").write_text(yaml.safe_dump({"train": settings}))
    return root, TrainParams(**settings)


def test_two_gloo_processes_match_one_process(ddp_setup):
    from finsent.training.model import load_classifier
    from finsent.training.train import run

    root, p = ddp_setup
    single = run(p, root / "train.csv", root / "single", log=lambda _: None, dev_path=root / "dev.csv")

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    cmd = two_process_training(root)
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
