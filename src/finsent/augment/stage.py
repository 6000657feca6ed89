"""The augmentation stage: label-preserving variants of training rows, weighted toward the minority
classes, with evaluation look-alikes removed.

``augment`` is pure (frames in, frame out). Its output holds the original rows first, then the new
ones, in four columns: ``text``, ``label``, ``source_row`` (the position of the input row a row came
from; an original row points at itself) and ``augmenter`` ("original" for the input rows). ``run`` is the
only function here that writes a file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from finsent.augment.eda import random_deletion, random_swap
from finsent.augment.finance import broker_swap, company_swap, number_rewrite, ticker_swap
from finsent.augment.lexicon import Lexicon, load_lexicon
from finsent.augment.overlap import EvalOverlapIndex
from finsent.augment.synonyms import synonym_replace
from finsent.augment.text import has_words, latin_share
from finsent.config import AugmentParams
from finsent.data.frames import DataError, check_columns, read_dataset, write_dataset
from finsent.data.validate import normalise_text
from finsent.vocabulary import LABELS

ORIGINAL = "original"
BACKTRANSLATION = "backtranslation"
COLUMNS = ("text", "label", "source_row", "augmenter")

Augmenter = Callable[[str, np.random.Generator, Lexicon], "str | None"]


class RoundTripTranslator(Protocol):
    def translate_round_trip(self, texts: Sequence[str]) -> list[str]: ...


def build_augmenters(p: AugmentParams) -> dict[str, Augmenter]:
    """The per-text augmenters with a weight above zero, options bound, in the order of ``p.augmenters``."""
    available: dict[str, Augmenter] = {
        "ticker_swap": ticker_swap,
        "company_swap": company_swap,
        "broker_swap": broker_swap,
        "number_rewrite": number_rewrite,
        "synonym": partial(synonym_replace, max_replacements=p.synonym_max_replacements),
        "random_swap": partial(random_swap, swaps=p.eda_swaps),
        "random_deletion": partial(random_deletion, prob=p.eda_deletion_prob),
    }
    return {name: available[name] for name, weight in p.augmenters.items() if weight > 0 and name in available}


def is_augmentable(text: str, label: int, p: AugmentParams) -> bool:
    """Rows worth varying: a known label, English words beyond tickers and links, not overly long."""
    return (
        0 <= label < len(LABELS)
        and 0 < len(text.strip()) <= p.max_text_chars
        and has_words(text)
        and latin_share(text) >= p.min_latin_share
    )


def preserves_direction(source: str, variant: str, label: int, lexicon: Lexicon) -> bool:
    """The label guard: a variant keeps its negations, gains no cue of another direction, and a
    bullish or bearish row loses none of its own cues."""
    before, after = lexicon.cue_counts(source), lexicon.cue_counts(variant)
    if after["negation"] != before["negation"]:
        return False
    name = LABELS[label]
    for direction in ("bullish", "bearish"):
        if direction != name and after[direction] > before[direction]:
            return False
    return name == "neutral" or after[name] >= before[name]


def keep_variant(source: str, variant: str | None, label: int, lexicon: Lexicon, p: AugmentParams) -> bool:
    return (
        isinstance(variant, str)
        and 0 < len(variant.strip()) <= p.max_text_chars
        and normalise_text(variant) != normalise_text(source)
        and has_words(variant)
        and preserves_direction(source, variant, label, lexicon)
    )


def plan_variant_counts(labels: np.ndarray, eligible: np.ndarray, p: AugmentParams, rng: np.random.Generator) -> np.ndarray:
    """Variants to make per row: the whole part of its class's rate, plus one more with the fraction's
    probability. Ineligible rows get none."""
    rates = np.array([float(p.variants_per_row.get(LABELS[y], 0.0)) if 0 <= y < len(LABELS) else 0.0 for y in labels])
    extra = rng.random(len(labels)) < (rates - np.floor(rates))
    return np.where(eligible, np.floor(rates).astype(int) + extra.astype(int), 0)


def _draw_orders(names: list[str], weights: np.ndarray, slots: int, rng: np.random.Generator) -> list[list[str]]:
    """For each variant, the augmenters to try: a weighted random order without repetition."""
    probs = weights / weights.sum()
    return [[names[i] for i in rng.choice(len(names), size=len(names), replace=False, p=probs)] for _ in range(slots)]


def _back_translate(texts: list[str], rows: list[int], translator: RoundTripTranslator) -> dict[int, str]:
    unique = sorted(set(rows))
    outputs = translator.translate_round_trip([texts[r] for r in unique]) if unique else []
    if len(outputs) != len(unique):
        raise ValueError(f"back-translator returned {len(outputs)} texts for {len(unique)} inputs")
    return {r: out for r, out in zip(unique, outputs) if isinstance(out, str) and out.strip()}


def generate_variants(
    texts: list[str],
    labels: np.ndarray,
    p: AugmentParams,
    rng: np.random.Generator,
    lexicon: Lexicon,
    backtranslator: RoundTripTranslator | None = None,
) -> tuple[pd.DataFrame, int]:
    """New rows only, and how many variants were planned. A variant is kept when it differs from its
    source, passes the label guard and is not a duplicate of any row already kept."""
    augmenters = build_augmenters(p)
    weights = {name: float(p.augmenters[name]) for name in augmenters}
    if backtranslator is not None and p.augmenters.get(BACKTRANSLATION, 0.0) > 0:
        weights[BACKTRANSLATION] = float(p.augmenters[BACKTRANSLATION])
    eligible = np.array([is_augmentable(t, int(y), p) for t, y in zip(texts, labels)], dtype=bool)
    counts = plan_variant_counts(labels, eligible, p, rng)
    slots = [int(row) for row in np.flatnonzero(counts) for _ in range(counts[row])]
    if not weights or not slots:
        return pd.DataFrame(columns=list(COLUMNS)), len(slots)
    names = list(weights)
    orders = _draw_orders(names, np.array([weights[n] for n in names]), len(slots), rng)
    # Back-translation runs as one batch, for the variants that drew it first; elsewhere in an order
    # it only reuses a translation already made for that row.
    translated = (
        _back_translate(texts, [row for row, order in zip(slots, orders) if order[0] == BACKTRANSLATION], backtranslator)
        if backtranslator is not None and BACKTRANSLATION in weights
        else {}
    )
    seen = {normalise_text(t) for t in texts}
    rows: list[tuple[str, int, int, str]] = []
    for row, order in zip(slots, orders):
        source, label = texts[row], int(labels[row])
        for name in order:
            variant = translated.get(row) if name == BACKTRANSLATION else augmenters[name](source, rng, lexicon)
            if variant is not None and keep_variant(source, variant, label, lexicon, p) and normalise_text(variant) not in seen:
                seen.add(normalise_text(variant))
                rows.append((variant, label, int(row), name))
                break
    return pd.DataFrame(rows, columns=list(COLUMNS)), len(slots)


@dataclass(frozen=True)
class AugmentResult:
    frame: pd.DataFrame
    planned_variants: int = 0
    eval_duplicates_removed: int = 0  # new rows dropped as exact or near duplicates of evaluation rows
    eval_duplicates_removed_originals: int = 0  # original rows dropped for the same reason


def _originals(df: pd.DataFrame) -> pd.DataFrame:
    check_columns(df, "augment input")
    labels = pd.to_numeric(df["label"], errors="coerce")
    if labels.isna().any() or (labels % 1 != 0).any():
        raise DataError("augment input: labels must be integer class ids (read the data with finsent.data.read_dataset)")
    return pd.DataFrame(
        {
            "text": df["text"].fillna("").astype(str).to_numpy(),
            "label": labels.astype("int64").to_numpy(),
            "source_row": np.arange(len(df), dtype="int64"),
            "augmenter": ORIGINAL,
        }
    )


def augment_frame(
    df: pd.DataFrame,
    p: AugmentParams,
    rng: np.random.Generator,
    eval_texts: Sequence[str] | None = None,
    backtranslator: RoundTripTranslator | None = None,
    lexicon: Lexicon | None = None,
) -> AugmentResult:
    """``augment`` with the counts a summary needs."""
    originals = _originals(df)
    if not p.enabled:
        return AugmentResult(originals)
    lexicon = lexicon or load_lexicon(p.lexicon)
    new, planned = generate_variants(originals["text"].tolist(), originals["label"].to_numpy(), p, rng, lexicon, backtranslator)
    removed_new = removed_originals = 0
    if eval_texts is not None:
        index = EvalOverlapIndex(eval_texts, p.near_duplicate_threshold)
        leaked = np.array(index.mask(new["text"].tolist()), dtype=bool)
        new, removed_new = new.loc[~leaked], int(leaked.sum())
        if p.drop_eval_overlap_originals:
            leaked = np.array(index.mask(originals["text"].tolist()), dtype=bool)
            originals, removed_originals = originals.loc[~leaked], int(leaked.sum())
    frame = pd.concat([originals, new.astype(originals.dtypes.to_dict())], ignore_index=True)
    return AugmentResult(frame, planned, removed_new, removed_originals)


def augment(
    df: pd.DataFrame,
    p: AugmentParams,
    rng: np.random.Generator,
    eval_texts: Sequence[str] | None = None,
    backtranslator: RoundTripTranslator | None = None,
) -> pd.DataFrame:
    """The original rows plus label-preserving variants, with evaluation look-alikes removed."""
    return augment_frame(df, p, rng, eval_texts, backtranslator).frame


@dataclass(frozen=True)
class AugmentSummary:
    output: str
    md5: str  # of the written file; what DVC records as its version
    rows_in: int
    rows_out: int
    rows_added: int
    planned_variants: int
    added_by_class: dict[str, int] = field(default_factory=dict)
    added_by_augmenter: dict[str, int] = field(default_factory=dict)
    eval_duplicates_removed: int = 0
    eval_duplicates_removed_originals: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def read_augmented(path: str | Path) -> pd.DataFrame:
    """Read a file written by ``run``: text, label (int), source_row (int), augmenter."""
    df = read_dataset(path)
    check_columns(df, str(path), COLUMNS)
    df["source_row"] = pd.to_numeric(df["source_row"], errors="raise").astype("int64")
    return df


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_backtranslator(p: AugmentParams) -> RoundTripTranslator | None:
    if not p.backtranslation_enabled:
        return None
    from finsent.augment.backtranslate import BackTranslator  # torch and transformers only when asked for

    forward, backward = p.backtranslation_model, p.backtranslation_reverse_model
    assert forward is not None and backward is not None  # enabled, and AugmentParams sets both or neither
    return BackTranslator(
        forward,
        backward,
        max_length=p.backtranslation_max_length,
        batch_size=p.backtranslation_batch_size,
        device=p.backtranslation_device,
    )


def run(
    p: AugmentParams,
    train_path: str | Path,
    heldout_paths: Sequence[str | Path | None],
    out_path: str | Path,
    backtranslator: RoundTripTranslator | None = None,
) -> AugmentSummary:
    """Augment the prepared training CSV, write it atomically to ``out_path`` and say what was added.
    ``heldout_paths``: the CSVs never trained on (the dev split, the test set; None entries are
    skipped) whose look-alikes are removed."""
    train_df = read_dataset(train_path)
    heldout = [read_dataset(path) for path in heldout_paths if path is not None]
    translator = backtranslator if backtranslator is not None else load_backtranslator(p)
    eval_texts = [t for df in heldout for t in df["text"].fillna("").astype(str)] if heldout else None
    result = augment_frame(train_df, p, np.random.default_rng(p.seed), eval_texts, translator)
    path = write_dataset(result.frame, out_path)
    added = result.frame.loc[result.frame["augmenter"] != ORIGINAL]
    return AugmentSummary(
        output=str(path),
        md5=_md5(path),
        rows_in=len(train_df),
        rows_out=len(result.frame),
        rows_added=len(added),
        planned_variants=result.planned_variants,
        added_by_class={name: int((added["label"] == i).sum()) for i, name in enumerate(LABELS)},
        added_by_augmenter={str(k): int(v) for k, v in added["augmenter"].value_counts().sort_index().items()},
        eval_duplicates_removed=result.eval_duplicates_removed,
        eval_duplicates_removed_originals=result.eval_duplicates_removed_originals,
    )
