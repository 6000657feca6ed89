"""Fine-tuning: a loop you can read top to bottom.

``fit`` trains a model already in memory on pre-tokenised data; ``run`` is the I/O wrapper used by
the CLI, the Prefect flow and ``dvc repro`` alike: load the base model, fit, save the result.

Runs are seeded and resumable: the batch order of every epoch is a function of (seed, epoch), and a
checkpoint holds the model, optimiser, scheduler and step, so a resumed run replays the same batches.
Under ``torchrun`` each process trains on its own share of every step's batches (DDP; see
``finsent.distributed``).

After training, the dev split's logits of the kept weights fit the calibration
(``finsent.training.calibration``; ``train.calibration``), saved beside the weights as
``model/calibration.json`` so that it goes wherever the model folder goes.

Unlabelled news (``unlabelled_path``: the prepare stage's pool, which holds no dev or test text) feeds
two switches of ``fit_frames``: task-adaptive pre-training before fine-tuning (``finsent.training.tapt``)
and self-training, a first pass whose calibrated confident labels join the rows of a second
(``finsent.training.self_training``). FGM and LoRA are switches of ``fit`` itself (``finsent.training.recipe``);
LoRA adapters are merged before ``fit`` returns, so what is saved and served is a plain classifier.

Fast by construction: the data is tokenised once and copied to the device once; batches group texts
of similar length (little padding) and are gathered on the device; on a GPU, bf16 autocast, fused
AdamW and the larger batches of ``train.on_cuda``; no host-device synchronisation but every
``LOG_EVERY`` steps.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from finsent.config import TrainParams, from_dict
from finsent.data.frames import read_dataset
from finsent.data.prepare import read_unlabelled, unlabelled_pool
from finsent.files import atomic_path, write_json
from finsent.training.calibration import Calibration, fit_calibration, save_calibration
from finsent.training.cls_forward import logits_module, set_pooling
from finsent.training.features import Encoded, encode_texts, gather_batch, length_bucketed_batches, padded_width, to_device
from finsent.training.model import ModelError, autocast_dtype, choose_device, load_classifier, resolve_base_model
from finsent.training.recipe import (
    DevSelection,
    attach_lora,
    class_weights,
    cpu_state,
    eval_steps,
    fgm_backward,
    make_scheduler,
    merge_lora,
    param_groups,
    score_dev,
    select_on_dev,
    summed_loss,
    teacher_probabilities,
)
from finsent.training.score import predict_logits_encoded
from finsent.training.self_training import PseudoLabels, pseudo_label, with_pseudo_rows
from finsent.training.tapt import copy_encoder, masked_lm, pretrain


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
    batch_size: int  # the settings in effect, after train.on_cuda on a GPU
    learning_rate: float
    dev_rows: int = 0  # 0: no dev split, the last weights are kept
    dev_macro_f1: float | None = None  # of the weights kept (see ``selected``)
    dev_accuracy: float | None = None
    stopped_early: bool = False
    selected: dict = field(default_factory=dict)
    dev_history: list = field(default_factory=list)
    calibration: dict = field(default_factory=dict)  # calibration.json: the kind, its parameters, how dev chose it
    unlabelled_texts: int = 0  # unlabelled news read by TAPT and self-training (after the dev check and the cap)
    tapt: dict = field(default_factory=dict)  # train.tapt_steps: the masked-LM loss history; {} when off
    self_training: dict = field(default_factory=dict)  # train.self_training_threshold: the pseudo-labels; {} when off


LOG_EVERY = 50  # steps between reading the loss back from the device (a synchronisation)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def training_device(p: TrainParams, rank: int = 0, world_size: int = 1) -> torch.device:
    """The device of this process: under torchrun on GPUs, the one of its local rank."""
    device = choose_device(p.device)
    if world_size > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    return device


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The global batches of one epoch; the same on every process and on every resume."""
    return length_bucketed_batches(lengths, batch_size, np.random.default_rng([seed, epoch]))


def shard(batch: np.ndarray, rank: int, world_size: int) -> tuple[np.ndarray, float]:
    """This process's share of a global batch, and the factor for its summed loss.

    DDP averages gradients over the processes; scaling each shard's summed loss by
    ``world_size / len(batch)`` makes that average the mean over the whole batch even when shards
    differ in size, so a step equals one process training on the whole batch. A process whose share
    is empty still has to join the gradient all-reduce: it runs one row with a factor of zero.
    """
    rows = batch[rank::world_size]
    if len(rows) == 0:
        return batch[:1], 0.0
    return rows, world_size / len(batch)


def params_for_device(p: TrainParams, device: torch.device) -> TrainParams:
    """``p`` with its ``on_cuda`` overrides applied when training runs on a GPU."""
    if device.type != "cuda" or not p.on_cuda:
        return p
    merged = {f.name: getattr(p, f.name) for f in fields(p)} | dict(p.on_cuda) | {"on_cuda": {}}
    return from_dict(TrainParams, merged, "train.on_cuda")


def _save_checkpoint(
    path: Path, model: PreTrainedModel, optimizer, scheduler, step: int, fingerprint: str, selection: DevSelection
) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "fingerprint": fingerprint,
        "selection": selection.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
    }
    with atomic_path(path) as tmp:  # an interrupted save never corrupts the last good checkpoint
        torch.save(state, tmp)


def load_checkpoint(path: Path, device: torch.device) -> dict:
    """A training checkpoint, loaded as tensors, numbers and strings only (``weights_only``): a file
    planted in the run folder cannot run code, and a truncated or foreign one is a clear error."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, foreign, or holding objects beyond tensors and numbers
        raise ModelError(f"checkpoint {path} cannot be loaded safely ({type(exc).__name__}); delete it to train from the start") from exc


def fit(
    model: PreTrainedModel,
    encoded: Encoded,
    labels: np.ndarray,
    p: TrainParams,
    *,
    dev: tuple[Encoded, np.ndarray] | None = None,
    soft_targets: np.ndarray | None = None,
    row_weights: np.ndarray | None = None,
    checkpoint_path: Path | None = None,
    fingerprint: str = "",
    log: Callable[[str], None] = print,
    on_step: Callable[[int, float], None] | None = None,
    on_evaluate: Callable[[int, dict], None] | None = None,
) -> dict:
    """Fine-tune ``model`` in place. With ``dev`` (the dev split, tokenised, and its labels), score it
    every ``eval_every_epochs``, stop early after ``early_stopping_patience`` evaluations without a
    gain, and end with the weights the dev split prefers. ``on_evaluate(step, scores)`` sees each dev
    evaluation (a hyper-parameter search prunes there). ``soft_targets``: teacher probabilities for
    every training row (distillation, weighted ``distill_alpha``); ``row_weights``: each row's loss
    weight (pseudo-labelled rows). With ``lora_rank``, only adapters and the head train, and they are
    merged into ``model`` before it returns; with ``fgm_epsilon``, each step adds FGM's adversarial
    loss. Returns the loop's statistics."""
    rank, world_size = dist_info()
    device = training_device(p, rank, world_size)
    if device.type == "cuda" and p.on_cuda:
        log(f"training on {device}: train.on_cuda overrides {dict(p.on_cuda)}")
    p = params_for_device(p, device)
    amp_dtype = autocast_dtype(device, p.precision)
    if p.num_threads and device.type == "cpu":
        torch.set_num_threads(p.num_threads)

    lora = attach_lora(model, p) if p.lora_rank > 0 else None  # adapters inside ``model``; the rest frozen
    model.to(device)
    model.train()
    set_pooling(model, p.pooling)  # in the model's config: saved with it, so scoring reads the same head
    net = logits_module(model)  # (input_ids, attention_mask) -> logits; BERT skips the unread positions
    if world_size > 1:
        net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    if p.compile:
        net = torch.compile(net)
    # Fused: one kernel over all tensors; on CPU too, where it is several times faster than foreach.
    optimizer = torch.optim.AdamW(param_groups(model, p), lr=p.learning_rate, fused=device.type in {"cuda", "cpu"})
    steps_per_epoch = math.ceil(len(labels) / p.batch_size)
    total_steps = max(1, math.ceil(p.epochs * steps_per_epoch))
    scheduler = make_scheduler(optimizer, p, total_steps)
    weight = class_weights(labels, model.config.num_labels, p.class_weighting)
    weight = weight.to(device) if weight is not None else None
    evaluate_at = eval_steps(total_steps, steps_per_epoch, p.eval_every_epochs) if dev is not None else set()
    selection = DevSelection(keep=p.average_checkpoints, patience=p.early_stopping_patience)

    step = 0
    if checkpoint_path is not None and checkpoint_path.is_file():
        state = load_checkpoint(checkpoint_path, device)
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            selection.load_state_dict(state["selection"])
            torch.set_rng_state(state["torch_rng"].cpu())  # map_location moved it to the device
            if state.get("cuda_rng") is not None and device.type == "cuda":
                torch.cuda.set_rng_state_all([r.cpu() for r in state["cuda_rng"]])
            step = int(state["step"])
            log(f"resuming from checkpoint {checkpoint_path} at step {step}/{total_steps}")
        else:
            log(f"ignoring checkpoint {checkpoint_path}: it belongs to other data or settings")
    resumed_from = step

    tokens = to_device(encoded, device)  # the whole pre-tokenised set, copied once
    targets = torch.as_tensor(labels, dtype=torch.long).to(device)
    soft = torch.as_tensor(soft_targets, dtype=torch.float32).to(device) if soft_targets is not None else None
    weights = torch.as_tensor(row_weights, dtype=torch.float32).to(device) if row_weights is not None else None
    embeddings = model.get_input_embeddings().weight if p.fgm_epsilon > 0 else None

    def batch_loss(input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: torch.Tensor, loss_scale: float) -> torch.Tensor:
        autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
        with autocast:
            logits = net(input_ids, attention_mask)
        return (
            summed_loss(
                logits,
                targets[rows],
                weight=weight,
                label_smoothing=p.label_smoothing,
                rdrop_alpha=p.rdrop_alpha,
                soft_targets=soft[rows] if soft is not None else None,
                distill_alpha=p.distill_alpha,
                row_weights=weights[rows] if weights is not None else None,
            )
            * loss_scale
        )

    bar = tqdm(total=total_steps, initial=step, desc="train", unit="step", disable=not p.progress or rank != 0)
    started = time.perf_counter()
    last_checkpoint = started
    eval_seconds = 0.0
    samples = 0
    loss_value = float("nan")
    stopped_early = False
    while step < total_steps and not stopped_early:
        epoch, first = divmod(step, steps_per_epoch)
        batches = epoch_batches(encoded.lengths, p.batch_size, p.seed, epoch)[first : first + total_steps - step]
        shards = [shard(batch, rank, world_size) for batch in batches]
        # This process's rows of the whole epoch go to the device in one copy.
        epoch_rows = torch.from_numpy(np.concatenate([rows for rows, _ in shards])).to(device)
        ends = np.cumsum([len(rows) for rows, _ in shards])
        for batch, (host_rows, loss_scale), end in zip(batches, shards, ends):
            rows = epoch_rows[end - len(host_rows) : end]
            width = padded_width(encoded.lengths[host_rows], p.pad_to_multiple_of)
            input_ids, attention_mask = gather_batch(tokens, rows, width)
            if p.rdrop_alpha > 0:  # R-Drop: the same rows twice, through different dropout masks
                input_ids, attention_mask = input_ids.repeat(2, 1), attention_mask.repeat(2, 1)
            loss = batch_loss(input_ids, attention_mask, rows, loss_scale)
            loss.backward()
            if embeddings is not None:  # FGM: the loss at perturbed embeddings adds its gradients
                fgm_backward(embeddings, p.fgm_epsilon, functools.partial(batch_loss, input_ids, attention_mask, rows, loss_scale))
            if p.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), p.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            samples += len(batch)
            bar.update(1)
            if step % LOG_EVERY == 0 or step == total_steps:
                loss_value = float(loss.detach())
                bar.set_postfix(loss=f"{loss_value:.3f}", epoch=f"{step / steps_per_epoch:.2f}")
            if dev is not None and step in evaluate_at:  # dev only: the test set is never looked at during training
                eval_started = time.perf_counter()
                scores = score_dev(model, dev, p, device)
                selection.record(step, step / steps_per_epoch, scores, model)
                eval_seconds += time.perf_counter() - eval_started
                log(f"step {step}: dev macro-F1 {scores['macro_f1']:.4f}, accuracy {scores['accuracy']:.4f}")
                if on_evaluate is not None:
                    on_evaluate(step, scores)
                if selection.should_stop:
                    log(f"early stop at step {step}: no dev gain in {p.early_stopping_patience} evaluations")
                    stopped_early = True
                    break
            now = time.perf_counter()
            if (
                checkpoint_path is not None
                and rank == 0
                and p.checkpoint_every_minutes > 0
                and now - last_checkpoint >= 60 * p.checkpoint_every_minutes
                and step < total_steps
            ):
                _save_checkpoint(checkpoint_path, model, optimizer, scheduler, step, fingerprint, selection)
                last_checkpoint = now
            if on_step is not None:
                on_step(step, loss_value)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started - eval_seconds
    bar.close()
    selected = select_on_dev(model, selection, dev, p, device) if selection.best else {"kind": "last", "step": step}
    if lora is not None:
        merge_lora(lora)  # ``model`` is a plain classifier again, its adapters folded into the weights
    model.eval()
    return {
        "steps": step,
        "resumed_from_step": resumed_from,
        "seconds": seconds,
        "eval_seconds": eval_seconds,
        "samples_per_second": samples / seconds if seconds > 0 else 0.0,
        "final_loss": float(loss.detach()) if step > resumed_from else loss_value,
        "device": str(device),
        "world_size": world_size,
        "batch_size": p.batch_size,
        "learning_rate": p.learning_rate,
        "epochs": p.epochs,
        "stopped_early": stopped_early,
        "dev_history": selection.history,
        "selected": selected,
    }


def fingerprint_of(p: TrainParams, *datasets: tuple[Sequence[str], np.ndarray]) -> str:
    """What a checkpoint must match to be resumed: the settings that change the result, and the data
    (the training rows, the dev rows that select the weights, and the unlabelled texts of TAPT and
    self-training)."""
    h = hashlib.sha256()
    ignored = {"progress", "checkpoint_every_minutes", "num_threads", "calibration"}  # none changes the weights
    settings = {k: v for k, v in asdict(p).items() if k not in ignored}
    h.update(json.dumps(settings, sort_keys=True).encode())
    for texts, labels in datasets:
        h.update(f"|{len(texts)}|".encode())
        for text, label in zip(texts, labels):
            h.update(text.encode("utf-8", "surrogatepass"))
            h.update(bytes([int(label) & 0xFF]))
    return h.hexdigest()


def unlabelled_for_training(
    p: TrainParams, unlabelled: Sequence[str], train_df: pd.DataFrame, dev_df: pd.DataFrame | None, log: Callable[[str], None]
) -> list[str]:
    """The unlabelled texts TAPT and self-training read: none unless one of them is on; never a copy of
    a dev row (checked again here: the prepare stage's pool already holds no dev or test text, and a
    caller may pass any texts), nor of a training row; the most recent ``unlabelled_max_texts``."""
    if not p.reads_unlabelled_texts or not len(unlabelled):
        return []
    pool = unlabelled_pool(unlabelled, [train_df], [dev_df])
    texts = pool.texts[-p.unlabelled_max_texts :]
    log(
        f"unlabelled news: {len(texts)} texts kept of {len(unlabelled)} ({pool.dropped_heldout} copies of dev rows, "
        f"{pool.dropped_labelled} of training rows, {pool.dropped_duplicates} repeats dropped; cap {p.unlabelled_max_texts})"
    )
    return texts


def _checkpoint_fingerprint(path: Path | None) -> str | None:
    if path is None or not path.is_file():
        return None
    return str(load_checkpoint(path, torch.device("cpu")).get("fingerprint"))


def first_pass_paths(checkpoint_path: Path | None) -> tuple[Path | None, Path | None]:
    """Self-training's own files beside the checkpoint: the first pass's checkpoint, and its pseudo-labels
    (a resumed run that finished the first pass does not run it again)."""
    if checkpoint_path is None:
        return None, None
    return checkpoint_path.with_name("checkpoint-first-pass.pt"), checkpoint_path.with_name("pseudo-labels.json")


def _read_pseudo_labels(path: Path | None, key: str) -> PseudoLabels | None:
    if path is None or not path.is_file():
        return None
    raw = json.loads(path.read_text())
    if raw.get("key") != key:
        return None
    return PseudoLabels(raw["texts"], np.asarray(raw["labels"], dtype=np.int64), np.asarray(raw["confidence"]), int(raw["candidates"]))


def _write_pseudo_labels(path: Path | None, key: str, pseudo: PseudoLabels) -> None:
    if path is not None and dist_info()[0] == 0:
        raw = {
            "key": key,
            "texts": pseudo.texts,
            "labels": pseudo.labels.tolist(),
            "confidence": pseudo.confidence.tolist(),
            "candidates": pseudo.candidates,
        }
        write_json(path, raw)


def pseudo_labels_of(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    dev_df: pd.DataFrame | None,
    p: TrainParams,
    log: Callable[[str], None],
) -> tuple[PseudoLabels, dict]:
    """The first pass as teacher: calibrated on dev like the model that ships, it labels ``texts``; the
    confident ones are kept. Under DDP, rank 0's choice is everyone's (the rows must agree to the last)."""
    calibration = calibrate_on_dev(model, tokenizer, dev_df, p)
    logits = predict_logits_encoded(model, encode_texts(tokenizer, texts, p.max_length), precision=p.precision)
    pseudo = pseudo_label(texts, calibration.probabilities(logits), p.self_training_threshold)
    if dist_info()[1] > 1:
        shared: list = [pseudo]
        torch.distributed.broadcast_object_list(shared, src=0)
        pseudo = shared[0]
    log(
        f"self-training: the first pass ({calibration.describe()}) labelled {len(pseudo.texts)} of {len(texts)} texts at >= {p.self_training_threshold}"
    )
    return pseudo, {"teacher_calibration": calibration.kind}


def fit_frames(
    p: TrainParams,
    train_df: pd.DataFrame,
    dev_df: pd.DataFrame | None = None,
    *,
    unlabelled: Sequence[str] = (),
    checkpoint_path: Path | None = None,
    log: Callable[[str], None] = print,
    on_evaluate: Callable[[int, dict], None] | None = None,
) -> tuple[PreTrainedTokenizerBase, PreTrainedModel, dict]:
    """Load the base model and fine-tune it on ``train_df`` (text, label), the dev split ``dev_df``
    selecting the weights. Returns the tokenizer, the model and ``fit``'s statistics.

    ``unlabelled``: news texts without labels, read only with TAPT or self-training on. TAPT adapts the
    encoder on the training texts and these before anything trains; self-training fine-tunes a first
    pass, lets it label them (``pseudo_labels_of``), and fine-tunes again from the same start with the
    confident ones added."""
    set_seed(p.seed)
    tokenizer, model = load_classifier(p.base_model)
    set_pooling(model, p.pooling)  # an encoder without mean pooling fails here, not after TAPT's half hour
    dev = None
    dev_data: list[tuple[Sequence[str], np.ndarray]] = []
    if dev_df is not None and len(dev_df):
        dev_texts, dev_labels = dev_df["text"].tolist(), dev_df["label"].to_numpy(dtype=np.int64)
        dev = (encode_texts(tokenizer, dev_texts, p.max_length), dev_labels)
        dev_data.append((dev_texts, dev_labels))
    news = unlabelled_for_training(p, unlabelled, train_df, dev_df, log)
    news_data = [(news, np.zeros(len(news), dtype=np.int64))] if news else []
    rank, world_size = dist_info()
    # A checkpoint is only resumed by a run with the same settings in effect on its device.
    effective = params_for_device(p, training_device(p, rank, world_size))
    base_data = [(train_df["text"].tolist(), train_df["label"].to_numpy(dtype=np.int64)), *dev_data, *news_data]

    self_training = p.self_training_threshold > 0 and bool(news)
    if p.self_training_threshold > 0 and not news:
        log("self-training: no unlabelled texts to label; one fine-tuning pass")
    first_checkpoint, pseudo_path = first_pass_paths(checkpoint_path)
    first_fingerprint = hashlib.sha256(f"first pass|{fingerprint_of(effective, *base_data)}".encode()).hexdigest()
    pseudo_key = f"{first_fingerprint}|{p.calibration}"
    pseudo = _read_pseudo_labels(pseudo_path, pseudo_key) if self_training else None

    def final_fingerprint(rows: pd.DataFrame) -> str:
        rows_data = (rows["text"].tolist(), rows["label"].to_numpy(dtype=np.int64))
        return fingerprint_of(effective, rows_data, *dev_data, *news_data)

    extra: dict = {"unlabelled_texts": len(news)}
    rows, row_weights = train_df, None
    if pseudo is not None:
        rows, row_weights = with_pseudo_rows(train_df, pseudo, p.self_training_weight)
    # Resuming the final fine-tune: its checkpoint replaces every weight, so TAPT would be wasted.
    final_known = not self_training or pseudo is not None
    if p.tapt_steps > 0 and not (final_known and _checkpoint_fingerprint(checkpoint_path) == final_fingerprint(rows)):
        masked = masked_lm(resolve_base_model(p.base_model))
        tapt_texts = list(dict.fromkeys([*train_df["text"].tolist(), *news]))  # the training texts without labels, and the news
        extra["tapt"] = pretrain(masked, tokenizer, tapt_texts, effective, training_device(p, rank, world_size), log)
        copy_encoder(masked, model)
        del masked
    first: dict | None = None  # the first pass's statistics, when it runs in this call
    if self_training and pseudo is None:
        start = cpu_state(model)  # the second pass starts where the first did
        labels = train_df["label"].to_numpy(dtype=np.int64)
        soft = teacher_probabilities(p, train_df["text"].tolist(), log) if p.distill_from else None
        first = fit(
            model,
            encode_texts(tokenizer, train_df["text"].tolist(), p.max_length),
            labels,
            p,
            dev=dev,
            soft_targets=soft,
            checkpoint_path=first_checkpoint,
            fingerprint=first_fingerprint,
            log=log,
        )
        pseudo, teacher = pseudo_labels_of(model, tokenizer, news, dev_df, p, log)
        _write_pseudo_labels(pseudo_path, pseudo_key, pseudo)
        extra["self_training"] = {
            "first_pass_dev_macro_f1": first["selected"].get("dev_macro_f1"),
            "first_pass_steps": first["steps"],
            **teacher,
        }
        if pseudo.texts:
            model.load_state_dict(start)
            rows, row_weights = with_pseudo_rows(train_df, pseudo, p.self_training_weight)
    if pseudo is not None:
        settings = {"threshold": p.self_training_threshold, "weight": p.self_training_weight}
        extra["self_training"] = {**extra.get("self_training", {}), **pseudo.summary(), **settings}
    dev_rows = len(dev[1]) if dev is not None else 0
    if first is not None and pseudo is not None and not pseudo.texts:  # a second pass on the same rows would repeat the first
        log("self-training: no text reached the threshold; the first pass is the model")
        return tokenizer, model, {**first, "dev_rows": dev_rows, **extra}

    texts = rows["text"].tolist()
    labels = rows["label"].to_numpy(dtype=np.int64)
    soft_targets = teacher_probabilities(p, texts, log) if p.distill_from else None
    stats = fit(
        model,
        encode_texts(tokenizer, texts, p.max_length),
        labels,
        p,
        dev=dev,
        soft_targets=soft_targets,
        row_weights=row_weights,
        checkpoint_path=checkpoint_path,
        fingerprint=final_fingerprint(rows),
        log=log,
        on_evaluate=on_evaluate,
    )
    return tokenizer, model, {**stats, "dev_rows": dev_rows, **extra}


def calibrate_on_dev(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dev_df: pd.DataFrame | None, p: TrainParams
) -> Calibration:
    """Fit ``p.calibration`` on the dev split's logits of the weights kept (the test set is never looked
    at); with no dev split the model stays uncalibrated, and ``fit`` says why."""
    if dev_df is None or not len(dev_df):
        return Calibration(fit={"method": p.calibration, "rows": 0, "reason": "no dev split: not calibrated"})
    encoded = encode_texts(tokenizer, dev_df["text"].tolist(), p.max_length)
    logits = predict_logits_encoded(model, encoded, precision=p.precision)
    return fit_calibration(logits, dev_df["label"].to_numpy(dtype=np.int64), p.calibration, seed=p.seed)


def run(
    p: TrainParams,
    train_path: str | Path,
    out_dir: str | Path,
    log: Callable[[str], None] = print,
    dev_path: str | Path | None = None,
    unlabelled_path: str | Path | None = None,
) -> TrainSummary:
    """Load the base model, fine-tune it on the prepared CSV ``train_path`` (text, label), save it
    under ``out_dir/model`` with its tokenizer, and write ``out_dir/train_summary.json``. With
    ``dev_path`` (the dev split), the dev split selects the weights, may stop training early, and fits
    the calibration saved with the model (``model/calibration.json``). ``unlabelled_path``: the prepare
    stage's unlabelled pool (``PreparedFiles.unlabelled``), read only when TAPT or self-training is on."""
    resolve_base_model(p.base_model)  # a wrong path fails before any data is read
    train_df = read_dataset(train_path)
    dev_df = read_dataset(dev_path) if dev_path is not None else None
    unlabelled = read_unlabelled(unlabelled_path) if unlabelled_path is not None and p.reads_unlabelled_texts else []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / "checkpoint.pt"
    tokenizer, model, stats = fit_frames(p, train_df, dev_df, unlabelled=unlabelled, checkpoint_path=checkpoint, log=log)
    rank, _ = dist_info()
    model_dir = out_dir / "model"
    calibration = Calibration()
    if rank == 0:  # the others' models are the same weights: only the one that saves calibrates
        calibration = calibrate_on_dev(model, tokenizer, dev_df, p)
        fitted = calibration.fit
        change = f", dev NLL {fitted['nll_uncalibrated']:.4f} -> {fitted['nll']:.4f}" if "nll" in fitted else ""
        log(f"calibration: {calibration.describe()}{change}" + (f" ({fitted['reason']})" if "reason" in fitted else ""))
        model.to("cpu")
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        save_calibration(calibration, model_dir)
        for finished in (checkpoint, *first_pass_paths(checkpoint)):  # the saved model supersedes them
            if finished is not None:
                finished.unlink(missing_ok=True)
    summary = TrainSummary(
        model_dir=str(model_dir),
        rows=len(train_df),
        **{k: stats[k] for k in ("steps", "epochs", "seconds", "samples_per_second", "final_loss", "device", "world_size")},
        resumed_from_step=stats["resumed_from_step"],
        batch_size=stats["batch_size"],
        learning_rate=stats["learning_rate"],
        dev_rows=stats["dev_rows"],
        dev_macro_f1=stats["selected"].get("dev_macro_f1"),
        dev_accuracy=stats["selected"].get("dev_accuracy"),
        stopped_early=stats["stopped_early"],
        selected=stats["selected"],
        dev_history=stats["dev_history"],
        calibration=calibration.to_dict(),
        unlabelled_texts=stats["unlabelled_texts"],
        tapt=stats.get("tapt", {}),
        self_training=stats.get("self_training", {}),
    )
    if rank == 0:
        write_json(out_dir / "train_summary.json", asdict(summary))
    return summary
