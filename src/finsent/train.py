"""Fine-tuning: a loop you can read top to bottom.

``fit`` trains a model already in memory on pre-tokenised data; ``run`` is the I/O wrapper used by
the CLI, the Prefect flow and ``dvc repro`` alike: load the base model, fit, save the result.

Runs are seeded and resumable: the batch order of every epoch is a function of (seed, epoch), and a
checkpoint holds the model, optimiser, scheduler and step, so a resumed run replays the same batches.
Under ``torchrun`` each process trains on its own share of every step's batches (DDP).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm
from transformers import PreTrainedModel, get_linear_schedule_with_warmup

from finsent.config import TrainParams
from finsent.data import read_dataset
from finsent.features import Encoded, encode_texts, length_bucketed_batches, pad_batch
from finsent.model import autocast_dtype, choose_device, load_classifier


@dataclass(frozen=True)
class TrainSummary:
    model_dir: str
    rows: int
    steps: int
    epochs: float
    seconds: float
    samples_per_second: float
    final_loss: float
    device: str
    world_size: int
    resumed_from_step: int


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The global batches of one epoch; the same on every process and on every resume."""
    return length_bucketed_batches(lengths, batch_size, np.random.default_rng([seed, epoch]))


def shard(batch: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """This process's share of a global batch: DDP averages gradients, so the step equals one
    process training on the whole batch."""
    return batch[rank::world_size]


def _save_checkpoint(path: Path, model: PreTrainedModel, optimizer, scheduler, step: int, fingerprint: str) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "fingerprint": fingerprint,
            "torch_rng": torch.get_rng_state(),
        },
        tmp,
    )
    os.replace(tmp, path)  # atomic: an interrupted save never corrupts the last good checkpoint


def fit(
    model: PreTrainedModel,
    encoded: Encoded,
    labels: np.ndarray,
    p: TrainParams,
    *,
    checkpoint_path: Path | None = None,
    fingerprint: str = "",
    log: Callable[[str], None] = print,
    on_step: Callable[[int, float], None] | None = None,
) -> dict:
    """Fine-tune ``model`` in place. Returns the loop's statistics."""
    rank, world_size = dist_info()
    device = choose_device(p.device)
    if world_size > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    amp_dtype = autocast_dtype(device, p.precision)
    if p.num_threads and device.type == "cpu":
        torch.set_num_threads(p.num_threads)

    model.to(device)
    model.train()
    net = DistributedDataParallel(model) if world_size > 1 else model
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {"params": [t for n, t in model.named_parameters() if not n.endswith(no_decay)], "weight_decay": p.weight_decay},
        {"params": [t for n, t in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=p.learning_rate, fused=device.type == "cuda")
    steps_per_epoch = math.ceil(len(labels) / p.batch_size)
    total_steps = max(1, math.ceil(p.epochs * steps_per_epoch))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(p.warmup_fraction * total_steps), total_steps)

    step = 0
    if checkpoint_path is not None and checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location=device, weights_only=False)
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
            step = int(state["step"])
            log(f"resuming from checkpoint {checkpoint_path} at step {step}/{total_steps}")
        else:
            log(f"ignoring checkpoint {checkpoint_path}: it belongs to other data or settings")
    resumed_from = step

    labels_t = torch.as_tensor(labels, dtype=torch.long)
    bar = tqdm(total=total_steps, initial=step, desc="train", unit="step", disable=not p.progress or rank != 0)
    started = time.perf_counter()
    last_checkpoint = started
    samples = 0
    loss_value = float("nan")
    while step < total_steps:
        epoch, first = divmod(step, steps_per_epoch)
        for batch in epoch_batches(encoded.lengths, p.batch_size, p.seed, epoch)[first:]:
            if step >= total_steps:
                break
            rows = shard(batch, rank, world_size)
            input_ids, attention_mask = pad_batch(encoded, rows)
            input_ids = input_ids.to(device, non_blocking=True)
            attention_mask = attention_mask.to(device, non_blocking=True)
            targets = labels_t[rows].to(device, non_blocking=True)
            autocast = (
                torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
            )
            with autocast:
                logits = net(input_ids=input_ids, attention_mask=attention_mask).logits
            loss = torch.nn.functional.cross_entropy(logits.float(), targets)
            loss.backward()
            if p.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), p.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            samples += len(batch)
            bar.update(1)
            if step % 20 == 0 or step == total_steps:
                loss_value = float(loss.detach())
                bar.set_postfix(loss=f"{loss_value:.3f}", epoch=f"{step / steps_per_epoch:.2f}")
            now = time.perf_counter()
            if (
                checkpoint_path is not None
                and rank == 0
                and p.checkpoint_every_minutes > 0
                and now - last_checkpoint >= 60 * p.checkpoint_every_minutes
                and step < total_steps
            ):
                _save_checkpoint(checkpoint_path, model, optimizer, scheduler, step, fingerprint)
                last_checkpoint = now
            if on_step is not None:
                on_step(step, loss_value)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    bar.close()
    model.eval()
    return {
        "steps": step,
        "resumed_from_step": resumed_from,
        "seconds": seconds,
        "samples_per_second": samples / seconds if seconds > 0 else 0.0,
        "final_loss": float(loss.detach()) if step > resumed_from else loss_value,
        "device": str(device),
        "world_size": world_size,
    }


def fingerprint_of(p: TrainParams, texts: list[str], labels: np.ndarray) -> str:
    """What a checkpoint must match to be resumed: the settings that change the result, and the data."""
    import hashlib

    h = hashlib.sha256()
    settings = {k: v for k, v in asdict(p).items() if k not in {"progress", "checkpoint_every_minutes", "num_threads"}}
    h.update(json.dumps(settings, sort_keys=True).encode())
    for text, label in zip(texts, labels):
        h.update(text.encode("utf-8", "surrogatepass"))
        h.update(bytes([int(label) & 0xFF]))
    return h.hexdigest()


def run(p: TrainParams, train_path: str | Path, out_dir: str | Path, log: Callable[[str], None] = print) -> TrainSummary:
    """Load the base model, fine-tune it on the prepared CSV ``train_path`` (text, label), save it
    under ``out_dir/model`` with its tokenizer, and write ``out_dir/train_summary.json``."""
    train_df = read_dataset(train_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    set_seed(p.seed)
    tokenizer, model = load_classifier(p.base_model)
    texts = train_df["text"].tolist()
    labels = train_df["label"].to_numpy(dtype=np.int64)
    encoded = encode_texts(tokenizer, texts, p.max_length)
    stats = fit(
        model,
        encoded,
        labels,
        p,
        checkpoint_path=out_dir / "checkpoint.pt",
        fingerprint=fingerprint_of(p, texts, labels),
        log=log,
    )
    model_dir = out_dir / "model"
    rank, _ = dist_info()
    if rank == 0:
        model.to("cpu")
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        (out_dir / "checkpoint.pt").unlink(missing_ok=True)  # finished: the saved model supersedes it
    summary = TrainSummary(
        model_dir=str(model_dir),
        rows=len(labels),
        epochs=p.epochs,
        **{k: stats[k] for k in ("steps", "seconds", "samples_per_second", "final_loss", "device", "world_size")},
        resumed_from_step=stats["resumed_from_step"],
    )
    if rank == 0:
        (out_dir / "train_summary.json").write_text(json.dumps(asdict(summary), indent=2))
    return summary
