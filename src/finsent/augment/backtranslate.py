"""Back-translation: English -> pivot language -> English with two local MarianMT-style models.

No translation weights ship with finsent: the user points ``augment.backtranslation_model`` and
``augment.backtranslation_reverse_model`` at folders they have (for example Helsinki-NLP/opus-mt-en-de
and opus-mt-de-en saved with ``save_pretrained``). Models load from those paths only, never from a hub.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from finsent.training.model import ModelError, choose_device, from_pretrained


def _load(path: str | Path, device: torch.device) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise ModelError(f"translation model folder {folder} does not exist or holds no config.json")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = from_pretrained(AutoModelForSeq2SeqLM, folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load translation model from {folder}: {exc}") from exc
    return tokenizer, model.to(device).eval()


class BackTranslator:
    """Round-trips texts through a pivot language; an output that comes back empty is returned as ""."""

    def __init__(
        self,
        forward_path: str | Path,
        backward_path: str | Path,
        max_length: int = 128,
        batch_size: int = 32,
        device: str = "auto",
    ) -> None:
        if max_length < 1 or batch_size < 1:
            raise ValueError("max_length and batch_size must be at least 1")
        self.device = choose_device(device)
        self.max_length = max_length
        self.batch_size = batch_size
        self.forward = _load(forward_path, self.device)
        self.backward = _load(backward_path, self.device)

    @torch.inference_mode()
    def _translate(self, texts: Sequence[str], pair: tuple[PreTrainedTokenizerBase, PreTrainedModel]) -> list[str]:
        tokenizer, model = pair
        out: list[str] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            encoded = tokenizer(batch, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length)
            encoded = {k: v.to(self.device) for k, v in encoded.items() if k in ("input_ids", "attention_mask")}
            generated = model.generate(**encoded, max_new_tokens=self.max_length, num_beams=1, do_sample=False)
            out += [t.strip() for t in tokenizer.batch_decode(generated, skip_special_tokens=True)]
        return out

    def translate_round_trip(self, texts: Sequence[str]) -> list[str]:
        """One output per input, in order; "" where a translation came back empty."""
        texts = [t if isinstance(t, str) else "" for t in texts]
        todo = [i for i, t in enumerate(texts) if t.strip()]
        result = [""] * len(texts)
        if not todo:
            return result
        pivot = self._translate([texts[i] for i in todo], self.forward)
        back = self._translate([p if p else "." for p in pivot], self.backward)
        for i, p, b in zip(todo, pivot, back):
            result[i] = b if p else ""
        return result
