"""The training recipe: the pieces of ``finsent.train.fit`` that a setting switches on or off.

Each is a small function of tensors or of the model's parameter names, so the loop stays readable and
each piece is tested on its own: layer-wise learning-rate decay, the schedule, the loss (class
weights, label smoothing, R-Drop, distillation from teacher models, per-row weights), adversarial
training on the word embeddings (FGM), LoRA adapters, and model selection on the dev split (early
stopping, best checkpoint, checkpoint averaging). Which of them are on by default is decided by
measurement (``bench/bench_recipe.py``, results under ``bench/results/``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from transformers import (
    PreTrainedModel,
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

from finsent.config import TrainParams
from finsent.training.features import Encoded
from finsent.training.model import ModelError
from finsent.training.score import Scorer, predict_proba_encoded

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "LayerNorm.bias")
_LAYER = re.compile(r"\.layers?\.(\d+)\.")


def layer_depth(name: str, n_layers: int) -> int:
    """How far below the head a parameter sits: 0 for the head (classifier, pooler), ``n_layers - i``
    for transformer layer ``i``, ``n_layers + 1`` for the embeddings."""
    match = _LAYER.search(name)
    if match:
        return n_layers - int(match.group(1))
    if "embeddings" in name:
        return n_layers + 1
    return 0


def param_groups(model: PreTrainedModel, p: TrainParams) -> list[dict]:
    """AdamW groups: no weight decay on biases and norms; with ``layer_lr_decay`` < 1, each layer's
    learning rate is ``learning_rate * decay ** depth`` (the lower layers, more general, move less)."""
    n_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    groups: dict[tuple[int, bool], list[torch.nn.Parameter]] = {}
    for name, tensor in model.named_parameters():
        if not tensor.requires_grad:
            continue
        depth = layer_depth(name, n_layers) if p.layer_lr_decay < 1.0 else 0
        groups.setdefault((depth, name.endswith(NO_DECAY)), []).append(tensor)
    return [
        {"params": tensors, "weight_decay": 0.0 if no_decay else p.weight_decay, "lr": p.learning_rate * p.layer_lr_decay**depth}
        for (depth, no_decay), tensors in sorted(groups.items())
    ]


def make_scheduler(optimizer: torch.optim.Optimizer, p: TrainParams, total_steps: int):
    warmup = int(p.warmup_fraction * total_steps)
    if p.schedule == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, warmup, total_steps)
    if p.schedule == "constant":
        return get_constant_schedule_with_warmup(optimizer, warmup)
    return get_linear_schedule_with_warmup(optimizer, warmup, total_steps)


def class_weights(labels: np.ndarray, n_classes: int, mode: str) -> torch.Tensor | None:
    """``balanced``: n / (k * count) per class, so each class carries the same total weight."""
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = len(labels) / (n_classes * np.maximum(counts, 1.0))
    return torch.tensor(weights, dtype=torch.float32)


def summed_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    rdrop_alpha: float = 0.0,
    soft_targets: torch.Tensor | None = None,
    distill_alpha: float = 0.0,
    row_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """The loss summed over the batch: cross-entropy with the labels, mixed with cross-entropy with a
    teacher ensemble's probabilities (``soft_targets``, weight ``distill_alpha``) when given. With
    R-Drop, ``logits`` holds two dropout passes of the same rows stacked (2B rows): the mean of their
    losses plus ``rdrop_alpha`` times their symmetric KL divergence (Liang et al., 2021).
    ``row_weights`` scales each row's cross-entropy (pseudo-labelled rows count less); the R-Drop
    consistency term, which reads no label, is not scaled."""
    logits = logits.float()
    reduction = "sum" if row_weights is None else "none"

    def reduce(per_row: torch.Tensor) -> torch.Tensor:
        return per_row if row_weights is None else (per_row * row_weights).sum()

    def one_pass(x: torch.Tensor) -> torch.Tensor:
        hard = torch.nn.functional.cross_entropy(x, targets, weight=weight, label_smoothing=label_smoothing, reduction=reduction)
        if soft_targets is None:
            return reduce(hard)
        soft = torch.nn.functional.cross_entropy(x, soft_targets, reduction=reduction)
        return reduce((1.0 - distill_alpha) * hard + distill_alpha * soft)

    if rdrop_alpha <= 0:
        return one_pass(logits)
    first, second = logits.chunk(2)
    log_p, log_q = first.log_softmax(-1), second.log_softmax(-1)
    kl = torch.nn.functional.kl_div(log_p, log_q, log_target=True, reduction="sum") + torch.nn.functional.kl_div(
        log_q, log_p, log_target=True, reduction="sum"
    )
    return (one_pass(first) + one_pass(second)) / 2 + rdrop_alpha * kl / 2


def fgm_backward(embeddings: torch.nn.Parameter, epsilon: float, adversarial_loss: Callable[[], torch.Tensor]) -> torch.Tensor:
    """FGM adversarial training (Miyato et al., 2017, "Adversarial Training Methods for Semi-Supervised
    Text Classification"): call after the normal ``backward``. The word-embedding matrix moves by
    ``epsilon * g / ||g||`` (``g``: its gradient, non-zero only on the rows of the batch's tokens), the
    loss at that point (``adversarial_loss()``, a fresh forward pass) adds its gradients to the ones
    already there, and the weights are put back exactly as they were. Returns the adversarial loss.
    No host-device synchronisation: a zero gradient gives a zero step."""
    grad = embeddings.grad
    if grad is None:
        raise ModelError("FGM: the word embeddings have no gradient (frozen, or no backward pass before fgm_backward)")
    with torch.no_grad():
        saved = embeddings.detach().clone()
        embeddings.add_(grad * (epsilon / torch.linalg.vector_norm(grad).clamp_min(1e-12)))
    try:
        loss = adversarial_loss()
        loss.backward()
    finally:
        with torch.no_grad():
            embeddings.copy_(saved)
    return loss.detach()


def attach_lora(model: PreTrainedModel, p: TrainParams) -> torch.nn.Module:
    """Freeze ``model`` and add LoRA adapters (Hu et al., 2021, with ``peft``) of rank ``lora_rank``
    to the ``lora_target_modules``; the ``lora_modules_to_save`` (the head) train whole. The adapters
    go into ``model`` itself, so the loop, the [CLS]-only forward pass, DDP and checkpoints see the
    same module tree; returns the peft wrapper that ``merge_lora`` needs."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=p.lora_rank,
        lora_alpha=p.lora_alpha,
        lora_dropout=p.lora_dropout,
        target_modules=list(p.lora_target_modules),
        modules_to_save=list(p.lora_modules_to_save) or None,
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:  # peft: a target module that this architecture does not have
        raise ModelError(
            f"train.lora_target_modules {p.lora_target_modules} / lora_modules_to_save {p.lora_modules_to_save}: {exc}"
        ) from exc


def merge_lora(wrapped: torch.nn.Module) -> PreTrainedModel:
    """Fold the adapters into the weights and put the trained head copies in place: the model that
    ``attach_lora`` was given, now a plain classifier again (saved, served and calibrated as ever)."""
    return wrapped.merge_and_unload()


def dev_scores(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    predicted = probs.argmax(axis=1)
    picked = probs[np.arange(len(labels)), labels]
    return {
        "macro_f1": float(f1_score(labels, predicted, labels=list(range(probs.shape[1])), average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(labels, predicted)),
        "loss": float(-np.log(np.clip(picked, 1e-12, None)).mean()),
    }


def eval_steps(total_steps: int, steps_per_epoch: int, every_epochs: float) -> set[int]:
    """The steps after which the dev split is scored: every ``every_epochs`` and at the end."""
    every = max(1, round(every_epochs * steps_per_epoch))
    return set(range(every, total_steps + 1, every)) | {total_steps}


def average_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of several state dicts of one model (integer buffers taken from the first)."""
    averaged = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            averaged[key] = sum(s[key].double() for s in states).div(len(states)).to(first.dtype)
        else:
            averaged[key] = first.clone()
    return averaged


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@dataclass
class DevSelection:
    """Model selection on the dev split: the history of evaluations, the best ``keep`` states (for
    the best checkpoint and checkpoint averaging) and the early-stopping count."""

    keep: int = 1
    patience: int = 0
    history: list[dict] = field(default_factory=list)
    best: list[tuple[float, int, dict]] = field(default_factory=list)  # (macro_f1, step, state), best first
    evaluations_without_gain: int = 0

    def record(self, step: int, epoch: float, scores: dict[str, float], model: torch.nn.Module) -> None:
        improved = not self.best or scores["macro_f1"] > self.best[0][0]
        self.evaluations_without_gain = 0 if improved else self.evaluations_without_gain + 1
        self.history.append({"step": step, "epoch": round(epoch, 4), **scores})
        if len(self.best) < self.keep or scores["macro_f1"] > self.best[-1][0]:
            self.best.append((scores["macro_f1"], step, cpu_state(model)))
            self.best.sort(key=lambda item: (-item[0], item[1]))
            del self.best[self.keep :]

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.evaluations_without_gain >= self.patience

    @property
    def best_step(self) -> int | None:
        return self.best[0][1] if self.best else None

    def state_dict(self) -> dict:
        return {"history": self.history, "best": self.best, "evaluations_without_gain": self.evaluations_without_gain}

    def load_state_dict(self, state: dict) -> None:
        self.history, self.best = list(state["history"]), list(state["best"])
        self.evaluations_without_gain = int(state["evaluations_without_gain"])


def score_dev(model: PreTrainedModel, dev: tuple[Encoded, np.ndarray], p: TrainParams, device: torch.device) -> dict[str, float]:
    dev_encoded, dev_labels = dev
    probs = predict_proba_encoded(model, dev_encoded, batch_size=256, device=device, precision=p.precision)
    model.train()
    return dev_scores(dev_labels, probs)


def select_on_dev(model: PreTrainedModel, selection: DevSelection, dev, p: TrainParams, device: torch.device) -> dict:
    """Load the weights the dev split prefers: the best evaluation's, or the average of the best
    ``average_checkpoints`` when that average scores at least as well on dev."""
    best_f1, best_step, best_state = selection.best[0]
    best_accuracy = next(h["accuracy"] for h in selection.history if h["step"] == best_step)
    chosen = {"kind": "best", "step": best_step, "dev_macro_f1": best_f1, "dev_accuracy": best_accuracy}
    if len(selection.best) > 1:
        model.load_state_dict(average_states([state for _, _, state in selection.best]))
        averaged = score_dev(model, dev, p, device)
        chosen["average_dev_macro_f1"] = averaged["macro_f1"]
        if averaged["macro_f1"] >= best_f1:
            steps = [s for _, s, _ in selection.best]
            return {"kind": "average", "steps": steps, "dev_macro_f1": averaged["macro_f1"], "dev_accuracy": averaged["accuracy"]}
    model.load_state_dict(best_state)
    return chosen


def teacher_probabilities(p: TrainParams, texts: list[str], log: Callable[[str], None]) -> np.ndarray:
    """The mean class probabilities of the ``distill_from`` models on the training rows, each model
    with its own tokenizer (teachers may be larger encoders of another architecture)."""
    probs = []
    for folder in p.distill_from:
        if not (Path(folder) / "config.json").is_file():
            raise ModelError(f"train.distill_from: {folder} is not a saved model folder (no config.json)")
        teacher = Scorer.from_dir(folder, max_length=p.max_length, device=p.device, precision=p.precision)
        probs.append(teacher.predict_proba(texts))
        log(f"distillation: teacher {folder} scored {len(texts)} training rows")
        del teacher
    return np.mean(probs, axis=0)
