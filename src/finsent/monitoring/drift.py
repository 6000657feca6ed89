"""Drift of a new batch against the champion's training data, with Evidently 0.7, ending in a verdict.

Signals (names in ``finsent.config.DRIFT_SIGNALS``), each an Evidently metric with a threshold from
``DriftParams``:
- ``text_descriptors``: drift of per-text numbers: length and word count (Evidently descriptors), the
  share of words that are cashtags or URLs, of characters that are digits, and of words the champion's
  tokenizer splits into several pieces (new vocabulary). Fires when ``descriptor_min_drifted`` drift.
- ``text_content``: a domain classifier on the raw text's bag of words (Evidently's text drift).
  Catches new vocabulary, not new word order.
- ``embeddings``: a classifier telling reference from current on the champion's own sentence
  embeddings (mean-pooled last hidden state). Catches what the model itself sees, word order included.
- ``prediction``: drift of the predicted class shares.
- ``performance``: macro-F1 on the batch's labelled rows below the baseline by more than
  ``max_macro_f1_drop`` (only with at least ``min_labelled_rows`` labelled rows).

Both sides are sampled to ``max_rows`` rows first (2,000 keeps the descriptors' sampling noise well under
their threshold); the champion's forward pass on them then costs the most, and the t-SNE plot Evidently
draws for embeddings is capped at ``embedding_plot_rows`` rows per side. ``run`` saves the report as self-contained HTML and JSON
plus ``verdict.json``, and the whole snapshot (``*_snapshot.json``) that the Evidently workspace of ``finsent ui`` stores;
logging them to MLflow is the caller's job.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from finsent import files
from finsent.config import DRIFT_SIGNALS, DriftParams
from finsent.errors import FinsentError
from finsent.training.calibration import IDENTITY, Calibration
from finsent.training.cls_forward import head_logits, pooling_of
from finsent.training.features import encode_texts, pad_batch, sorted_batches
from finsent.vocabulary import CASHTAG, LABELS, URL

DESCRIPTOR_COLUMNS = ("text_length", "word_count", "cashtag_share", "url_share", "digit_share", "split_word_share")
MIN_ROWS = 20  # below this the domain classifiers have nothing to learn from
_EMBEDDING_NAME = "champion"
_WORD = re.compile(r"\S+")


class DriftError(FinsentError, ValueError):
    """The data cannot be compared: too few rows, missing columns, misaligned embeddings."""


@dataclass(frozen=True)
class DriftVerdict:
    """Machine-readable outcome: which signals fired, and each signal's value against its threshold."""

    drift: bool
    signals_fired: list[str]
    details: dict[str, dict[str, Any]]  # signal -> value, threshold, method, fired, ...
    signals_checked: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # signal -> why it was not computed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DriftResult:
    verdict: DriftVerdict
    report: Any  # evidently Snapshot of the drift metrics
    performance_report: Any | None  # evidently Snapshot of the classification metrics, when labels allow


@dataclass(frozen=True)
class DriftSummary:
    verdict: dict[str, Any]
    paths: dict[str, str]  # drift_html, drift_json, verdict_json, and performance_html/json when computed
    reference_rows: int
    current_rows: int
    seconds: dict[str, float] = field(default_factory=dict)  # embed, report, save: where the time went


# --- features -------------------------------------------------------------------------------------


def text_shares(texts: pd.Series) -> pd.DataFrame:
    """Per text: share of words that are cashtags or URLs, and share of characters that are digits."""
    texts = texts.astype(str)
    words = texts.str.count(_WORD).clip(lower=1)
    chars = texts.str.len().clip(lower=1)
    return pd.DataFrame(
        {
            "cashtag_share": texts.str.count(CASHTAG) / words,
            "url_share": texts.str.count(URL) / words,
            "digit_share": texts.str.count(r"\d") / chars,
        },
        index=texts.index,
    ).astype("float64")


def split_word_share(texts: pd.Series | list[str], tokenizer: PreTrainedTokenizerBase) -> np.ndarray:
    """Per text: the share of its whitespace words that ``tokenizer`` cuts into more than one piece.

    A rise means words the model's vocabulary does not hold whole: new names, another language, noise.
    """
    word_lists = [_WORD.findall(str(t)) for t in texts]
    flat = [w for words in word_lists for w in words]
    if not flat:
        return np.zeros(len(word_lists))
    # Each distinct word tokenized once: 2,000 TFNS headlines hold 24,511 words but 10,278 distinct
    # ones, and the tokenizer's per-word cost was most of this function's 1.2 s.
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(w, len(index)) for w in flat), dtype=np.int64, count=len(flat))
    pieces = tokenizer(list(index), add_special_tokens=False, return_attention_mask=False)["input_ids"]
    split = np.fromiter((len(x) > 1 for x in pieces), dtype=bool, count=len(index))[codes]
    counts = np.fromiter((len(w) for w in word_lists), dtype=np.int64, count=len(word_lists))
    owner = np.repeat(np.arange(len(word_lists)), counts)
    n_split = np.bincount(owner, weights=split, minlength=len(word_lists))
    return n_split / np.maximum(counts, 1)


@torch.inference_mode()
def champion_outputs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    *,
    max_length: int = 128,
    batch_size: int = 64,
    calibration: Calibration = IDENTITY,
) -> tuple[np.ndarray, np.ndarray]:
    """Sentence embeddings (mean-pooled last hidden state) and class probabilities, in one forward pass;
    the probabilities after ``calibration`` (the champion's, as its scorer serves them)."""
    encoded = encode_texts(tokenizer, texts, max_length)
    device = next(model.parameters()).device
    model.eval()
    embeddings = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    probs = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    logits = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    for rows in sorted_batches(encoded.lengths, batch_size):
        input_ids, attention_mask = pad_batch(encoded, rows)
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (out.hidden_states[-1].float() * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        embeddings[rows] = pooled.cpu().numpy()
        batch_logits = out.logits if pooling_of(model) == "cls" else head_logits(model, out.hidden_states[-1], attention_mask)
        probs[rows] = torch.softmax(batch_logits.float(), dim=-1).cpu().numpy()
        logits[rows] = batch_logits.float().cpu().numpy()
    if not calibration.is_identity:
        probs = calibration.probabilities(logits).astype(np.float32)
    return embeddings, probs


def embed(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: list[str], *, max_length: int = 128, batch_size: int = 64
) -> np.ndarray:
    """The champion's sentence embeddings of ``texts``, shape (n, hidden_size)."""
    return champion_outputs(model, tokenizer, texts, max_length=max_length, batch_size=batch_size)[0]


def sample_rows(df: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """At most ``max_rows`` rows drawn at random (all of them, in order, when there are fewer)."""
    if len(df) <= max_rows:
        return df.reset_index(drop=True)
    return df.sample(n=max_rows, random_state=seed).reset_index(drop=True)


# --- report ---------------------------------------------------------------------------------------


def _embedding_columns(width: int) -> list[str]:
    return [f"emb_{i:04d}" for i in range(width)]


def _frame(df: pd.DataFrame, embeddings: np.ndarray | None, tokenizer: PreTrainedTokenizerBase | None) -> pd.DataFrame:
    out = pd.DataFrame({"text": df["text"].astype(str).to_numpy()})
    out = pd.concat([out, text_shares(out["text"])], axis=1)
    if tokenizer is not None:
        out["split_word_share"] = split_word_share(out["text"], tokenizer)
    if "predicted" in df.columns:
        out["predicted"] = [LABELS[int(i)] for i in df["predicted"]]
    if embeddings is not None:
        if embeddings.shape[0] != len(df):
            raise DriftError(f"{embeddings.shape[0]} embeddings for {len(df)} rows")
        out = pd.concat([out, pd.DataFrame(embeddings, columns=_embedding_columns(embeddings.shape[1]))], axis=1)
    return out


@contextlib.contextmanager
def _embedding_plot_rows(rows: int) -> Iterator[None]:
    """Cap the rows per side of the t-SNE plot Evidently draws for embedding drift.

    Evidently 0.7 plots up to 2,500 rows per side, and that t-SNE alone takes ~45 s on 2 cores; the
    drift score itself still uses every sampled row. The cap is a module constant there, so it is set
    for the duration of one report and restored.
    """
    from evidently.legacy.metrics.data_drift import embeddings_drift

    previous = embeddings_drift.SAMPLE_CONSTANT
    embeddings_drift.SAMPLE_CONSTANT = rows
    try:
        yield
    finally:
        embeddings_drift.SAMPLE_CONSTANT = previous


def _value_drift_outcome(snapshot: Any, metric: Any) -> dict[str, Any]:
    result = snapshot.metric_results[metric.metric_id]
    value = float(result.value)
    failed = [t for t in result.tests if t.status.value == "FAIL"]
    # Evidently's own test decides (it knows whether the method is a distance or a p-value).
    fired = bool(failed) if result.tests else value > float(metric.threshold)
    return {"value": value, "threshold": float(metric.threshold), "method": metric.method, "fired": fired}


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    p: DriftParams,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    reference_embeddings: np.ndarray | None = None,
    current_embeddings: np.ndarray | None = None,
    baseline_macro_f1: float | None = None,
) -> DriftResult:
    """Run the Evidently report on two frames and read the verdict off it.

    Frames hold ``text`` and, where known, ``predicted`` (class id) and ``label`` (class id, -1 unknown).
    Embeddings are row-aligned with the frames. Signals that lack their inputs are listed in ``skipped``.
    ``baseline_macro_f1`` (the champion's evaluation macro-F1) is the performance baseline; without it,
    the reference rows' own macro-F1 is used, which is optimistic on training data.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.descriptors import TextLength, WordCount
    from evidently.metrics import DriftedColumnsCount, EmbeddingsDrift, ValueDrift
    from evidently.metrics.embeddings import ModelDriftMethod

    for name, df in (("reference", reference), ("current", current)):
        if "text" not in df.columns:
            raise DriftError(f"{name} data has no text column; found {list(df.columns)}")
        if len(df) < MIN_ROWS:
            raise DriftError(f"{name} data has {len(df)} rows; drift needs at least {MIN_ROWS}")
    wanted = set(p.signals)
    skipped: dict[str, str] = {}
    use_embeddings = "embeddings" in wanted and reference_embeddings is not None and current_embeddings is not None
    if "embeddings" in wanted and not use_embeddings:
        skipped["embeddings"] = "no champion embeddings given"
    use_prediction = "prediction" in wanted and "predicted" in reference.columns and "predicted" in current.columns
    if "prediction" in wanted and not use_prediction:
        skipped["prediction"] = "no predicted classes on both sides"

    ref = _frame(reference, reference_embeddings if use_embeddings else None, tokenizer)
    cur = _frame(current, current_embeddings if use_embeddings else None, tokenizer)
    own_descriptors = [c for c in DESCRIPTOR_COLUMNS[2:] if c in ref.columns]
    descriptors = ["text_length", "word_count", *own_descriptors]
    embedding_columns: list[str] = []
    if use_embeddings:
        assert reference_embeddings is not None  # use_embeddings checked both sides
        embedding_columns = _embedding_columns(reference_embeddings.shape[1])
    definition = DataDefinition(
        text_columns=["text"],
        numerical_columns=own_descriptors,
        categorical_columns=["predicted"] if use_prediction else [],
        datetime_columns=[],
        unknown_columns=[],
        list_columns=[],
        embeddings={_EMBEDDING_NAME: embedding_columns} if use_embeddings else None,
    )
    columns = ["text", *own_descriptors, *(["predicted"] if use_prediction else []), *embedding_columns]
    evidently_descriptors = [TextLength("text", alias="text_length"), WordCount("text", alias="word_count")]
    ref_ds = Dataset.from_pandas(ref[columns], data_definition=definition, descriptors=evidently_descriptors)
    cur_ds = Dataset.from_pandas(cur[columns], data_definition=definition, descriptors=evidently_descriptors)

    metrics: dict[str, Any] = {}
    if "text_descriptors" in wanted:
        metrics["descriptor_count"] = DriftedColumnsCount(
            columns=descriptors,
            drift_share=p.descriptor_min_drifted / len(descriptors),
            num_method=p.descriptor_method,
            num_threshold=p.descriptor_threshold,
        )
        for column in descriptors:
            metrics[f"descriptor:{column}"] = ValueDrift(column=column, method=p.descriptor_method, threshold=p.descriptor_threshold)
    if "text_content" in wanted:
        metrics["text_content"] = ValueDrift(column="text", method=p.text_method, threshold=p.text_threshold)
    if use_embeddings:
        metrics["embeddings"] = EmbeddingsDrift(
            embeddings_name=_EMBEDDING_NAME, drift_method=ModelDriftMethod(threshold=p.embedding_threshold)
        )
    if use_prediction:
        metrics["prediction"] = ValueDrift(column="predicted", method=p.prediction_method, threshold=p.prediction_threshold)
    # One OpenMP thread: the t-SNE plot is small, and on a busy machine its spinning worker threads
    # made it several times slower, not faster. A constant column (a batch with no URLs at all) makes
    # Evidently's column-correlation table divide by zero; the drift scores do not use it.
    with (
        _embedding_plot_rows(p.embedding_plot_rows),
        threadpool_limits(limits=1, user_api="openmp"),
        np.errstate(divide="ignore", invalid="ignore"),
    ):
        snapshot = Report(list(metrics.values()), include_tests=True).run(cur_ds, ref_ds)

    details: dict[str, dict[str, Any]] = {}
    if "text_descriptors" in wanted:
        per_column = {c: _value_drift_outcome(snapshot, metrics[f"descriptor:{c}"]) for c in descriptors}
        drifted = sorted(c for c, o in per_column.items() if o["fired"])
        details["text_descriptors"] = {
            "value": len(drifted),
            "threshold": p.descriptor_min_drifted,
            "method": p.descriptor_method,
            "fired": len(drifted) >= p.descriptor_min_drifted,
            "drifted_columns": drifted,
            "columns": per_column,
        }
    if "text_content" in wanted:
        details["text_content"] = _value_drift_outcome(snapshot, metrics["text_content"])
    if use_embeddings:
        value = float(snapshot.metric_results[metrics["embeddings"].metric_id].value)
        details["embeddings"] = {
            "value": value,
            "threshold": p.embedding_threshold,
            "method": "model (ROC AUC of a reference-vs-current classifier)",
            "fired": value > p.embedding_threshold,
            "dimensions": len(embedding_columns),
        }
    if use_prediction:
        outcome = _value_drift_outcome(snapshot, metrics["prediction"])
        outcome["reference_shares"] = _class_shares(reference["predicted"])
        outcome["current_shares"] = _class_shares(current["predicted"])
        details["prediction"] = outcome

    performance_snapshot = None
    if "performance" in wanted:
        performance_snapshot, performance, reason = _performance(reference, current, p, baseline_macro_f1)
        if performance is None:
            skipped["performance"] = reason
        else:
            details["performance"] = performance

    fired = [s for s in DRIFT_SIGNALS if s in details and details[s]["fired"]]
    verdict = DriftVerdict(
        drift=bool(fired),
        signals_fired=fired,
        details=details,
        signals_checked=[s for s in DRIFT_SIGNALS if s in details],
        skipped=skipped,
    )
    return DriftResult(verdict=verdict, report=snapshot, performance_report=performance_snapshot)


def _class_shares(classes: pd.Series) -> dict[str, float]:
    counts = np.bincount(classes.to_numpy(dtype=np.int64), minlength=len(LABELS))
    return {name: float(counts[i] / max(counts.sum(), 1)) for i, name in enumerate(LABELS)}


def _labelled(df: pd.DataFrame) -> pd.DataFrame:
    if "label" not in df.columns or "predicted" not in df.columns:
        return df.iloc[0:0]
    return df[df["label"].astype("int64") >= 0]


def _performance(
    reference: pd.DataFrame, current: pd.DataFrame, p: DriftParams, baseline_macro_f1: float | None
) -> tuple[Any | None, dict[str, Any] | None, str]:
    from evidently import DataDefinition, Dataset, MulticlassClassification, Report
    from evidently.metrics import Accuracy, F1ByLabel, F1Score

    cur = _labelled(current)
    if len(cur) < p.min_labelled_rows:
        return None, None, f"{len(cur)} labelled current rows with predictions (needs {p.min_labelled_rows})"
    ref = _labelled(reference)
    if baseline_macro_f1 is None and len(ref) < p.min_labelled_rows:
        return None, None, "no baseline macro-F1 given and too few labelled reference rows with predictions"

    def dataset(df: pd.DataFrame) -> Any:
        frame = pd.DataFrame({"label": [LABELS[int(i)] for i in df["label"]], "predicted": [LABELS[int(i)] for i in df["predicted"]]})
        definition = DataDefinition(
            categorical_columns=["label", "predicted"],
            classification=[MulticlassClassification(target="label", prediction_labels="predicted")],
        )
        return Dataset.from_pandas(frame, data_definition=definition)

    f1, accuracy = F1Score(), Accuracy()
    report = Report([f1, accuracy, F1ByLabel()], include_tests=False)
    has_reference = len(ref) >= p.min_labelled_rows
    snapshot = report.run(dataset(cur), dataset(ref) if has_reference else None)
    value = float(snapshot.metric_results[f1.metric_id].value)
    if baseline_macro_f1 is None:
        reference_only = Report([F1Score()]).run(dataset(ref), None)
        baseline, source = float(next(iter(reference_only.metric_results.values())).value), "reference rows"
    else:
        baseline, source = float(baseline_macro_f1), "given"
    threshold = baseline - p.max_macro_f1_drop
    outcome = {
        "value": value,
        "threshold": threshold,
        "method": "macro-F1 below baseline - max_macro_f1_drop",
        "fired": value < threshold,
        "baseline": baseline,
        "baseline_source": source,
        "accuracy": float(snapshot.metric_results[accuracy.metric_id].value),
        "labelled_rows": len(cur),
    }
    return snapshot, outcome, ""


# --- stage ----------------------------------------------------------------------------------------


def save_report(result: DriftResult, out_dir: str | Path) -> dict[str, str]:
    """Write the report(s) as self-contained HTML, JSON and a loadable snapshot, and the verdict; returns the paths."""
    out_dir = files.ensure_dir(out_dir)
    paths: dict[str, str] = {}
    reports = {"drift": result.report, "performance": result.performance_report}
    for name, snapshot in reports.items():
        if snapshot is None:
            continue
        files.write_text(out_dir / f"{name}_report.html", snapshot.get_html_str(as_iframe=False))
        files.write_text(out_dir / f"{name}_report.json", snapshot.json())
        # The whole snapshot (widgets included), which Snapshot.load reads back: what the Evidently
        # workspace of finsent ui stores (finsent.monitoring.workspace).
        files.write_text(out_dir / f"{name}_snapshot.json", snapshot.dumps())
        paths[f"{name}_html"] = str(out_dir / f"{name}_report.html")
        paths[f"{name}_json"] = str(out_dir / f"{name}_report.json")
        paths[f"{name}_snapshot"] = str(out_dir / f"{name}_snapshot.json")
    files.write_text(out_dir / "verdict.json", json.dumps(result.verdict.to_dict(), indent=2))
    paths["verdict_json"] = str(out_dir / "verdict.json")
    return paths


def _outputs_key(model: PreTrainedModel, texts: list[str], max_length: int, calibration: Calibration = IDENTITY) -> str:
    """Fingerprint of (model, texts, max_length, calibration): the config plus the output head's weights,
    which any fine-tuning changes, so a cache written for another champion is never reused."""
    digest = hashlib.sha256()
    if not calibration.is_identity:  # uncalibrated: the key of old, so caches written before stay valid
        digest.update(json.dumps([calibration.kind, calibration.temperature, calibration.weights, calibration.bias]).encode())
    digest.update(model.config.to_json_string().encode())
    for tensor in list(model.parameters())[-2:]:
        digest.update(tensor.detach().cpu().float().numpy().tobytes())
    digest.update(str(max_length).encode())
    digest.update("\x00".join(texts).encode())
    return digest.hexdigest()


def cached_champion_outputs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    cache: str | Path | None,
    *,
    max_length: int = 128,
    batch_size: int = 64,
    calibration: Calibration = IDENTITY,
) -> tuple[np.ndarray, np.ndarray]:
    """``champion_outputs``, read from or written to the ``.npz`` file ``cache`` when given.

    The reference (training data, fixed seed sample) is the same in every monitoring run of one champion,
    so its forward pass, half the stage's time, need only run once.
    """
    key = _outputs_key(model, texts, max_length, calibration) if cache is not None else ""
    if cache is not None and Path(cache).is_file():
        with np.load(cache) as stored:
            if str(stored["key"]) == key:
                return stored["embeddings"], stored["probs"]
    embeddings, probs = champion_outputs(model, tokenizer, texts, max_length=max_length, batch_size=batch_size, calibration=calibration)
    if cache is not None:
        with files.atomic_path(cache) as tmp:
            np.savez(tmp, key=np.array(key), embeddings=embeddings, probs=probs)
    return embeddings, probs


def run(
    p: DriftParams,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    out_dir: str | Path,
    *,
    model: PreTrainedModel | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    baseline_macro_f1: float | None = None,
    reference_cache: str | Path | None = None,
    calibration: Calibration = IDENTITY,
) -> DriftSummary:
    """Sample both sides, embed them with the champion, run the report, save it; returns the verdict.

    ``reference`` is the champion's training data (``text``, ``label``); ``current`` the new batch
    (``text``, and ``predicted``/``label`` as stored). Without a model, the embedding signal is skipped
    and predictions are only those already in the frames. ``reference_cache`` (an ``.npz`` path) keeps
    the champion's outputs on the reference sample between runs; a stale one is recomputed.
    ``calibration``: the champion's (``scorer.calibration``), so its probabilities here are the ones it serves.
    """
    if (model is None) != (tokenizer is None):
        raise DriftError("pass both the champion model and its tokenizer, or neither")
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    reference = sample_rows(reference, p.max_rows, p.seed)
    current = sample_rows(current, p.max_rows, p.seed)
    ref_emb = cur_emb = None
    if model is not None and tokenizer is not None:
        kwargs: dict[str, Any] = {"max_length": p.embedding_max_length, "batch_size": p.embedding_batch_size, "calibration": calibration}
        ref_texts = reference["text"].astype(str).tolist()
        ref_emb, ref_probs = cached_champion_outputs(model, tokenizer, ref_texts, reference_cache, **kwargs)
        cur_emb, cur_probs = champion_outputs(model, tokenizer, current["text"].astype(str).tolist(), **kwargs)
        # The champion's view of its own training data is the reference for prediction drift.
        reference = reference.assign(predicted=ref_probs.argmax(axis=1))
        if "predicted" not in current.columns:
            current = current.assign(predicted=cur_probs.argmax(axis=1))
    seconds["embed"] = time.perf_counter() - started
    started = time.perf_counter()
    result = drift_report(
        reference,
        current,
        p,
        tokenizer=tokenizer,
        reference_embeddings=ref_emb,
        current_embeddings=cur_emb,
        baseline_macro_f1=baseline_macro_f1,
    )
    seconds["report"] = time.perf_counter() - started
    started = time.perf_counter()
    paths = save_report(result, out_dir)
    seconds["save"] = time.perf_counter() - started
    return DriftSummary(
        verdict=result.verdict.to_dict(),
        paths=paths,
        reference_rows=len(reference),
        current_rows=len(current),
        seconds={k: round(v, 3) for k, v in seconds.items()},
    )
