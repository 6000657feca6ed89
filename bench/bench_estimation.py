"""How close the label-free performance estimates come to the accuracy that labels later show.

    PYTHONPATH=src python bench/bench_estimation.py [--root .] [--model-dir DIR] [--dev DEV.csv] \
        [--test datasets/tfns/sent_valid.csv] [--quick] [--out bench/results/estimation_cpu.json]

``--model-dir`` is a saved finsent model folder (``config.json``, the tokenizer and, for a calibrated
model, ``calibration.json``); by default the registry champion of the project at ``--root``, downloaded
from MLflow. ``--dev`` is the labelled reference the estimators read: the champion's dev split (held out
from training, the rows its calibration was fitted on); by default ``<run_dir>/data/dev.csv`` of the
champion's training run (its ``run_dir`` tag). ``--test`` is the pool the windows are drawn from: the
test set (TFNS ``sent_valid.csv``), which no training decision saw.

One forward pass over every text gives the sentence embeddings (as the drift signal computes them) and
the logits; the calibration saved with the model turns the logits into the probabilities the monitor
writes. Each scenario is a set of windows whose realised accuracy is known:

- ``in_domain``: windows of 500 test rows drawn at random (``--windows`` seeds);
- ``prior_*``: 500 test rows with other class shares (bearish-heavy, bullish-heavy, neutral-only);
- ``form_*``: test rows with a URL or cashtag against none; short (<= 8 words) against long (>= 16);
- ``typos_*``: test rows with a share of their words mistyped (a letter dropped, doubled, swapped or
  replaced: ``typo``); ``deletion_30``: 30% of the words deleted (``finsent.augment``'s EDA deletion);
- ``other_domain``: English sentences that are not financial news: the first lines of the docstrings of
  Python's standard library, labelled neutral (they carry no market sentiment). The only unlabelled-
  domain text that exists offline here; a labelled corpus of other financial news would be better;
- ``topic_covid``: the test rows about COVID-19 (the pandemic, vaccines). The champion saw this topic in
  training (TFNS train holds 323 such rows), so it is a topic slice, *not* a held-out topic; the JSON
  says so (``held_out: false``). A model folder built by ``--build-probe DIR --holdout-topic covid`` was
  fitted without any COVID row, and then this scenario is its held-out topic (``held_out: true``).

Rows of the table: each method's mean absolute error on the scenario's windows, and the naive estimate
(the mean top-class probability of the raw, uncalibrated softmax), so the gain is visible. Goals (issue
15): within 0.02 on in-domain windows of 500 rows; on every strong shift (a real drop of at least
``STRONG_DROP``), an estimated drop of at least half the real drop. Drops are against the model's
accuracy on the whole test set (what the champion's MLflow run records as ``accuracy``).

``--build-probe DIR``: a development stand-in when no trained champion exists: the packaged MiniLM
encoder, frozen, with a logistic-regression head fitted on its pooled outputs for the TFNS training rows
(minus the dev split and the held-out topic), calibrated on the dev split, saved as a finsent model
folder with ``dev.csv`` beside it. No fine-tuning; its numbers are the probe's, not the champion's.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import platform
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "OMP_WAIT_POLICY": "PASSIVE",  # spinning OpenMP threads slow everything down on a shared CPU
}.items():
    os.environ.setdefault(_key, _value)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from finsent.config import EstimateParams, load_params  # noqa: E402
from finsent.data.frames import read_dataset  # noqa: E402
from finsent.monitoring import estimate as est  # noqa: E402
from finsent.training.calibration import IDENTITY, Calibration, fit_calibration, load_calibration, save_calibration  # noqa: E402
from finsent.training.features import encode_texts, pad_batch, sorted_batches  # noqa: E402
from finsent.training.model import load_classifier  # noqa: E402
from finsent.vocabulary import CASHTAG, LABELS, URL  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WINDOW_ROWS = 500
STRONG_DROP = 0.05  # a real accuracy drop at least this large is a strong shift (the goal applies)
IN_DOMAIN_GOAL = 0.02
TOPICS = {"covid": r"covid|coronavirus|pandemic|vaccine|virus"}
METHODS = ("naive_confidence", "cbpe", "atc", "importance_weighting", "doubly_robust")
_WORD = re.compile(r"\S+")


# --- model outputs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outputs:
    """The model's view of some texts: embeddings (mean-pooled last hidden state, as drift computes
    them), raw softmax probabilities and calibrated probabilities."""

    embeddings: np.ndarray
    raw: np.ndarray
    calibrated: np.ndarray

    def take(self, rows: np.ndarray) -> Outputs:
        return Outputs(self.embeddings[rows], self.raw[rows], self.calibrated[rows])


@torch.inference_mode()
def forward(model, tokenizer, texts: list[str], *, max_length: int, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and logits of ``texts`` in one pass (``drift.champion_outputs``' pooling)."""
    encoded = encode_texts(tokenizer, texts, max_length)
    model.eval()
    embeddings = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    logits = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    for rows in sorted_batches(encoded.lengths, batch_size):
        input_ids, attention_mask = pad_batch(encoded, rows)
        out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        mask = attention_mask.unsqueeze(-1).float()
        embeddings[rows] = ((out.hidden_states[-1].float() * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)).numpy()
        logits[rows] = out.logits.float().numpy()
    return embeddings, logits


def outputs_of(
    model, tokenizer, calibration: Calibration, texts: list[str], max_length: int, cache: dict | None = None, name: str = ""
) -> Outputs:
    """The model's outputs on ``texts``; ``cache`` (name -> texts' digest, embeddings, logits) skips the
    forward pass for texts seen before with the same model (the calibration is applied afterwards)."""
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()
    if cache is not None and name in cache and cache[name][0] == digest:
        _, embeddings, logits = cache[name]
    else:
        unique = sorted(set(texts))
        unique_embeddings, unique_logits = forward(model, tokenizer, unique, max_length=max_length)
        where = {t: i for i, t in enumerate(unique)}
        rows = np.array([where[t] for t in texts], dtype=np.int64)
        embeddings, logits = unique_embeddings[rows], unique_logits[rows]
        if cache is not None:
            cache[name] = (digest, embeddings, logits)
    return Outputs(embeddings, IDENTITY.probabilities(logits), calibration.probabilities(logits))


def load_cache(path: Path | None, model_dir: Path) -> dict:
    if path is None or not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as stored:
        if str(stored["model"]) != model_fingerprint(model_dir):
            return {}
        names = [k.removesuffix(".digest") for k in stored.files if k.endswith(".digest")]
        return {n: (str(stored[f"{n}.digest"]), stored[f"{n}.embeddings"], stored[f"{n}.logits"]) for n in names}


def save_cache(path: Path | None, model_dir: Path, cache: dict) -> None:
    if path is None:
        return
    arrays = {"model": np.array(model_fingerprint(model_dir))}
    for name, (digest, embeddings, logits) in cache.items():
        arrays.update({f"{name}.digest": np.array(digest), f"{name}.embeddings": embeddings, f"{name}.logits": logits})
    np.savez(path, **arrays)


def model_fingerprint(model_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        if (model_dir / name).is_file():
            digest.update((model_dir / name).read_bytes())
    return digest.hexdigest()


# --- shifted texts --------------------------------------------------------------------------------


def typo(word: str, rng: np.random.Generator) -> str:
    """One keyboard slip in a word: a letter dropped, doubled, swapped with the next, or replaced."""
    letters = [i for i, ch in enumerate(word) if ch.isalpha()]
    if len(letters) < 2 or word.startswith(("$", "http", "@", "#")):
        return word
    i = int(rng.choice(letters[:-1]))
    kind = rng.integers(4)
    if kind == 0:
        return word[:i] + word[i + 1 :]
    if kind == 1:
        return word[:i] + word[i] + word[i:]
    if kind == 2:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return word[:i] + chr(ord("a") + int(rng.integers(26))) + word[i + 1 :]


def with_typos(text: str, share: float, rng: np.random.Generator) -> str:
    words = text.split(" ")
    return " ".join(typo(w, rng) if rng.random() < share else w for w in words)


@functools.cache
def _lexicon():
    from finsent.augment.lexicon import load_lexicon

    return load_lexicon()


def with_deletions(text: str, share: float, rng: np.random.Generator) -> str:
    """EDA random deletion (``finsent.augment.eda``): each plain word dropped with probability ``share``."""
    from finsent.augment.eda import random_deletion

    return random_deletion(text, rng, _lexicon(), prob=share) or text


# Standard-library modules whose docstrings give the other-domain sentences (importing them has no side effect).
STDLIB_MODULES = (
    "argparse", "asyncio", "bisect", "calendar", "codecs", "collections", "concurrent.futures", "configparser", "contextlib",
    "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "email.message", "enum", "fileinput", "fnmatch", "fractions",
    "ftplib", "functools", "gettext", "glob", "gzip", "hashlib", "heapq", "hmac", "http.client", "imaplib", "inspect", "io",
    "ipaddress", "itertools", "json", "locale", "logging", "mailbox", "math", "mimetypes", "numbers", "operator", "optparse",
    "pathlib", "pickle", "platform", "poplib", "pprint", "queue", "random", "re", "sched", "secrets", "selectors", "shlex",
    "shutil", "signal", "smtplib", "socket", "sqlite3", "ssl", "statistics", "string", "struct", "subprocess", "tarfile",
    "tempfile", "textwrap", "threading", "tokenize", "traceback", "types", "typing", "unittest", "urllib.parse", "uuid",
    "warnings", "wave", "weakref", "xml.etree.ElementTree", "zipfile", "zoneinfo",
)  # fmt: skip


def other_domain_texts(limit: int) -> list[str]:
    """First lines of the docstrings of Python's standard library (modules, classes, functions,
    methods): English that is not financial news."""
    import importlib
    import inspect

    texts: list[str] = []
    seen: set[str] = set()

    def add(obj: object) -> None:
        doc = inspect.getdoc(obj) or ""
        line = doc.strip().splitlines()[0].strip() if doc.strip() else ""
        if 5 <= len(_WORD.findall(line)) <= 30 and "(" not in line and line not in seen:
            seen.add(line)
            texts.append(line)

    for name in STDLIB_MODULES:
        module = importlib.import_module(name)
        add(module)
        for _, member in inspect.getmembers(module):
            if inspect.isfunction(member) or inspect.isclass(member):
                add(member)
            if inspect.isclass(member):
                for _, method in inspect.getmembers(member, inspect.isfunction):
                    add(method)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(texts))
    return [texts[i] for i in order[:limit]]


# --- scenarios ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # in_domain | prior | form | noise | other_domain | topic
    pool: str  # which texts (key of the pools)
    windows: list[np.ndarray]  # row indices into the pool
    note: str = ""
    held_out: bool | None = None  # topic scenarios: whether the model never saw the topic


def sample(rows: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(rows, size=min(size, len(rows)), replace=False) if len(rows) > size else rows


def prior_window(labels: np.ndarray, shares: dict[int, float], size: int, rng: np.random.Generator) -> np.ndarray:
    picks = []
    for label, share in shares.items():
        rows = np.flatnonzero(labels == label)
        picks.append(rng.choice(rows, size=min(len(rows), round(size * share)), replace=False))
    return np.concatenate(picks)


def build_scenarios(test: pd.DataFrame, *, windows: int, seed: int, held_out_topic: str | None, quick: bool) -> list[Scenario]:
    rng = np.random.default_rng(seed)
    labels = test["label"].to_numpy()
    texts = test["text"].astype(str)
    rows = np.arange(len(test))
    size = min(WINDOW_ROWS, len(test))
    reps = 1 if quick else 3
    words = texts.str.count(_WORD).to_numpy()
    has_form = texts.map(lambda t: bool(URL.search(t) or CASHTAG.search(t))).to_numpy(dtype=bool)
    bear, bull, neutral = (LABELS.index(n) for n in ("bearish", "bullish", "neutral"))
    scenarios = [
        Scenario("in_domain", "in_domain", "test", [sample(rows, size, rng) for _ in range(windows)], "random test rows"),
        Scenario(
            "prior_bearish",
            "prior",
            "test",
            [prior_window(labels, {bear: 0.5, bull: 0.25, neutral: 0.25}, size, rng) for _ in range(reps)],
            "50% bearish, 25% bullish, 25% neutral",
        ),
        Scenario(
            "prior_bullish",
            "prior",
            "test",
            [prior_window(labels, {bear: 0.2, bull: 0.6, neutral: 0.2}, size, rng) for _ in range(reps)],
            "20% bearish, 60% bullish, 20% neutral",
        ),
        Scenario("prior_neutral", "prior", "test", [prior_window(labels, {neutral: 1.0}, size, rng) for _ in range(reps)], "neutral only"),
        Scenario("form_url_or_cashtag", "form", "test", [sample(rows[has_form], size, rng) for _ in range(reps)], "a URL or $cashtag"),
        Scenario("form_plain", "form", "test", [sample(rows[~has_form], size, rng) for _ in range(reps)], "no URL, no cashtag"),
        Scenario("form_short", "form", "test", [sample(rows[words <= 8], size, rng) for _ in range(reps)], "<= 8 words"),
        Scenario("form_long", "form", "test", [sample(rows[words >= 16], size, rng) for _ in range(reps)], ">= 16 words"),
        Scenario("typos_15", "noise", "typos_15", [sample(rows, size, rng) for _ in range(reps)], "15% of words mistyped"),
        Scenario("typos_40", "noise", "typos_40", [sample(rows, size, rng) for _ in range(reps)], "40% of words mistyped"),
        Scenario("deletion_30", "noise", "deletion_30", [sample(rows, size, rng) for _ in range(reps)], "30% of words deleted (EDA)"),
        Scenario("other_domain", "other_domain", "other_domain", [], "stdlib docstring first lines, labelled neutral"),
    ]
    topic = held_out_topic or "covid"
    in_topic = texts.str.contains(TOPICS[topic], case=False, regex=True).to_numpy()
    if held_out_topic:
        scenarios.append(
            Scenario(f"topic_{topic}", "topic", "topic", [], f"{topic}: rows of the topic the model was fitted without", held_out=True)
        )
    else:
        scenarios.append(
            Scenario(
                f"topic_{topic}",
                "topic",
                "test",
                [rows[in_topic]],
                f"{topic} test rows; the topic occurs in training: NOT held out",
                held_out=False,
            )
        )
    return scenarios


# --- estimating -----------------------------------------------------------------------------------


def estimate_window(outputs: Outputs, reference: est.Reference, p: EstimateParams) -> dict[str, est.PerformanceEstimate | float]:
    estimation = est.estimate_performance(outputs.calibrated, p, reference=reference, current_embeddings=outputs.embeddings)
    found: dict[str, est.PerformanceEstimate | float] = {"naive_confidence": est.mean_confidence(outputs.raw)}
    found.update(estimation.estimates)
    found["domain_auc"] = estimation.domain_auc if estimation.domain_auc is not None else float("nan")
    return found


def accuracy_of(value: est.PerformanceEstimate | float) -> float:
    return value.estimated_accuracy if isinstance(value, est.PerformanceEstimate) else float(value)


def run_scenario(
    scenario: Scenario, pools: dict[str, tuple[pd.DataFrame, Outputs]], reference: est.Reference, p: EstimateParams, baseline: float
) -> dict:
    frame, outputs = pools[scenario.pool]
    windows = scenario.windows or [np.arange(len(frame))]
    if max(len(w) for w in windows) < p.min_rows:  # a slice the --quick sample barely holds
        reason = f"{max(len(w) for w in windows)} rows, fewer than estimate.min_rows ({p.min_rows})"
        return {"summary": {"kind": scenario.kind, "note": scenario.note, "skipped": reason, "strong": False, "methods": {}}, "windows": []}
    records = []
    for rows in windows:
        out = outputs.take(rows)
        labels = frame["label"].to_numpy()[rows]
        accuracy, macro_f1 = est.realised(labels, out.calibrated.argmax(axis=1))
        found = estimate_window(out, reference, p)
        record: dict = {"rows": len(rows), "accuracy": accuracy, "macro_f1": macro_f1, "domain_auc": found.pop("domain_auc")}
        for method, value in found.items():
            record[method] = {"accuracy": accuracy_of(value)}
            if isinstance(value, est.PerformanceEstimate):
                record[method].update(
                    macro_f1=value.estimated_macro_f1,
                    accuracy_low=value.accuracy_low,
                    accuracy_high=value.accuracy_high,
                    covered=value.accuracy_low <= accuracy <= value.accuracy_high,
                    effective_rows=value.effective_rows,
                )
        records.append(record)
    realised_mean = float(np.mean([r["accuracy"] for r in records]))
    real_drop = baseline - realised_mean
    summary: dict = {
        "kind": scenario.kind,
        "note": scenario.note,
        "windows": len(records),
        "rows_per_window": int(np.mean([r["rows"] for r in records])),
        "realised_accuracy": realised_mean,
        "real_drop": real_drop,
        "strong": real_drop >= STRONG_DROP,
        "domain_auc": float(np.nanmean([r["domain_auc"] for r in records])),
        "methods": {},
    }
    if scenario.held_out is not None:
        summary["held_out"] = scenario.held_out
    for method in METHODS:
        values = [r[method] for r in records if method in r]
        if not values:
            continue
        errors = [abs(v["accuracy"] - r["accuracy"]) for v, r in zip(values, records, strict=True)]
        estimated = float(np.mean([v["accuracy"] for v in values]))
        entry = {
            "estimated_accuracy": estimated,
            "mean_abs_error": float(np.mean(errors)),
            "share_within_0.02": float(np.mean([e <= IN_DOMAIN_GOAL for e in errors])),
            "estimated_drop": baseline - estimated,
        }
        if real_drop >= STRONG_DROP:
            entry["drop_ratio"] = (baseline - estimated) / real_drop
            entry["half_drop_met"] = (baseline - estimated) >= 0.5 * real_drop
        if "covered" in values[0]:
            entry["interval_coverage"] = float(np.mean([v["covered"] for v in values]))
            entry["mean_interval_width"] = float(np.mean([v["accuracy_high"] - v["accuracy_low"] for v in values]))
        summary["methods"][method] = entry
    return {"summary": summary, "windows": records}


def goals(results: dict[str, dict]) -> dict:
    """Per method: the in-domain goal and the strong-shift goal, met or not."""
    out = {}
    strong = [name for name, r in results.items() if r["summary"]["strong"]]
    for method in METHODS:
        in_domain = results["in_domain"]["summary"]["methods"].get(method)
        if in_domain is None:
            continue
        out[method] = {
            "in_domain_mean_abs_error": in_domain["mean_abs_error"],
            "in_domain_goal_met": in_domain["mean_abs_error"] <= IN_DOMAIN_GOAL,
            "strong_shifts": strong,
            "strong_shifts_half_drop_met": [s for s in strong if results[s]["summary"]["methods"].get(method, {}).get("half_drop_met")],
        }
        out[method]["all_goals_met"] = out[method]["in_domain_goal_met"] and len(out[method]["strong_shifts_half_drop_met"]) == len(strong)
    return out


def table(results: dict[str, dict], baseline: float) -> str:
    header = ["scenario", "windows x rows", "realised acc.", "real drop", *METHODS, "domain AUC"]
    lines = [
        f"Test-set accuracy (the baseline of every drop): {baseline:.3f}. Cells: mean absolute error of the estimated accuracy "
        "(estimated drop / real drop on strong shifts, >= 0.5 meets the goal).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, result in results.items():
        s = result["summary"]
        if "skipped" in s:
            lines.append(f"| {name} | skipped: {s['skipped']} |" + " |" * (len(header) - 2))
            continue
        cells = [
            name + (" (held out)" if s.get("held_out") else " (seen in training)" if s.get("held_out") is False else ""),
            f"{s['windows']} x {s['rows_per_window']}",
            f"{s['realised_accuracy']:.3f}",
            f"{s['real_drop']:+.3f}",
        ]
        for method in METHODS:
            m = s["methods"].get(method)
            if m is None:
                cells.append("-")
                continue
            cell = f"{m['mean_abs_error']:.3f}"
            if "drop_ratio" in m:
                cell += f" ({m['drop_ratio']:.2f}{'' if m['half_drop_met'] else ' ✗'})"
            cells.append(cell)
        cells.append(f"{s['domain_auc']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --- inputs ---------------------------------------------------------------------------------------


def champion_inputs(root: Path) -> tuple[Path, Path | None]:
    """The registry champion's model folder (downloaded) and its dev split (from its run's run_dir tag)."""
    from finsent import tracking
    from finsent.paths import RunLayout
    from finsent.registry import versions

    p = load_params(root / "params.yaml")
    client = tracking.connect(p.register, root)
    version = versions.alias_version(client, p.register.model_name, versions.CHAMPION)
    if version is None:
        raise SystemExit(f"no champion in the registry of {root}: pass --model-dir (and --dev)")
    mv = versions.get_version(client, p.register.model_name, version)
    model = versions.load_pyfunc(f"models:/{p.register.model_name}/{version}").unwrap_python_model().scorer
    target = root / "artifacts" / "bench" / f"champion-v{version}"
    model.model.save_pretrained(target)
    model.tokenizer.save_pretrained(target)
    save_calibration(getattr(model, "calibration", IDENTITY), target)
    run_dir = client.get_run(mv.run_id).data.tags.get("run_dir") if mv.run_id else None
    dev = RunLayout(Path(run_dir)).prepared.dev if run_dir else None
    return target, dev if dev is not None and dev.is_file() else None


def build_probe(out: Path, train_csv: Path, holdout_topic: str | None, max_length: int, seed: int) -> None:
    """The packaged MiniLM, frozen, with a logistic-regression head on its pooled [CLS] output."""
    from sklearn.linear_model import LogisticRegression

    from finsent.config import PACKAGED_ENCODER
    from finsent.data.split import dev_split

    train = read_dataset(train_csv)
    if holdout_topic:
        topic = train["text"].str.contains(TOPICS[holdout_topic], case=False, regex=True)
        (out / "heldout").mkdir(parents=True, exist_ok=True)
        train[topic].to_csv(out / "heldout" / f"{holdout_topic}.csv", index=False)
        train = train[~topic]
    fit_rows, dev = dev_split(train, 0.1, 42)  # data.dev_fraction, data.dev_seed
    tokenizer, model = load_classifier(PACKAGED_ENCODER, for_training=True)
    model.eval()

    @torch.inference_mode()
    def pooled(texts: list[str]) -> np.ndarray:
        encoded = encode_texts(tokenizer, texts, max_length)
        result = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
        for rows in sorted_batches(encoded.lengths, 128):
            input_ids, attention_mask = pad_batch(encoded, rows)
            result[rows] = model.bert(input_ids=input_ids, attention_mask=attention_mask).pooler_output.numpy()
        return result

    started = time.perf_counter()
    features = pooled(fit_rows["text"].tolist())
    head = LogisticRegression(C=1.0, max_iter=3000, random_state=seed).fit(features, fit_rows["label"].to_numpy())
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(head.coef_.astype(np.float32)))
        model.classifier.bias.copy_(torch.from_numpy(head.intercept_.astype(np.float32)))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _, dev_logits = forward(model, tokenizer, dev["text"].tolist(), max_length=max_length)
    calibration = fit_calibration(dev_logits, dev["label"].to_numpy(), "auto")
    save_calibration(calibration, out)
    dev.to_csv(out / "dev.csv", index=False)
    info = {
        "what": "probe: packaged MiniLM frozen + logistic-regression head on the pooled [CLS] output; not a fine-tuned champion",
        "train_rows": len(fit_rows),
        "dev_rows": len(dev),
        "holdout_topic": holdout_topic,
        "calibration": calibration.describe(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / "probe.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info, indent=2))


# --- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(REPO), help="the project whose registry champion is benchmarked by default")
    parser.add_argument("--model-dir", help="a saved finsent model folder (default: the registry champion)")
    parser.add_argument("--dev", help="the labelled reference: the model's dev split (default: the champion run's)")
    parser.add_argument("--test", default=str(REPO / "datasets" / "tfns" / "sent_valid.csv"), help="the pool the windows are drawn from")
    parser.add_argument("--train", default=str(REPO / "datasets" / "tfns" / "sent_train.csv"), help="--build-probe: its training rows")
    parser.add_argument("--windows", type=int, default=20, help="in-domain windows of 500 rows")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 3 in-domain windows, 1 per shift, 200 rows of test data per pool"
    )
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "estimation_cpu.json"))
    parser.add_argument("--table", help="also write the markdown table here")
    parser.add_argument("--outputs-cache", help="an .npz keeping the model's outputs between runs (the forward pass is the slow part)")
    parser.add_argument("--build-probe", metavar="DIR", help="build the probe model folder in DIR and stop")
    parser.add_argument("--holdout-topic", choices=sorted(TOPICS), help="--build-probe: leave this topic out of its training rows")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    if args.build_probe:
        build_probe(Path(args.build_probe), Path(args.train), args.holdout_topic, args.max_length, args.seed)
        return 0

    started = time.perf_counter()
    root = Path(args.root).resolve()
    if args.model_dir:
        model_dir, dev_path = Path(args.model_dir), Path(args.dev) if args.dev else None
        if dev_path is None and (model_dir / "dev.csv").is_file():  # a probe keeps its dev split beside it
            dev_path = model_dir / "dev.csv"
    else:
        model_dir, found_dev = champion_inputs(root)
        dev_path = Path(args.dev) if args.dev else found_dev
    if dev_path is None:
        raise SystemExit("no dev split found: pass --dev (the champion run's data/dev.csv)")
    probe_file = model_dir / "probe.json"
    probe = json.loads(probe_file.read_text()) if probe_file.is_file() else None
    held_out_topic = probe.get("holdout_topic") if probe else None

    tokenizer, model = load_classifier(str(model_dir), for_training=False)
    calibration = load_calibration(model_dir)
    dev = read_dataset(dev_path)
    test = read_dataset(args.test)
    test = test[test["label"] >= 0].reset_index(drop=True)
    windows = 3 if args.quick else args.windows
    if args.quick:
        test = test.sample(n=min(len(test), 600), random_state=args.seed).reset_index(drop=True)
        dev = dev.sample(n=min(len(dev), 300), random_state=args.seed).reset_index(drop=True)
    rng = np.random.default_rng(args.seed)
    pools_text: dict[str, pd.DataFrame] = {"test": test}
    for name, share, change in (("typos_15", 0.15, with_typos), ("typos_40", 0.40, with_typos), ("deletion_30", 0.30, with_deletions)):
        pools_text[name] = test.assign(text=[change(t, share, rng) for t in test["text"]])
    other = other_domain_texts(60 if args.quick else 500)
    pools_text["other_domain"] = pd.DataFrame({"text": other, "label": LABELS.index("neutral")})
    if held_out_topic:
        heldout = read_dataset(model_dir / "heldout" / f"{held_out_topic}.csv")
        in_test = test[test["text"].str.contains(TOPICS[held_out_topic], case=False, regex=True)]
        pools_text["topic"] = pd.concat([heldout, in_test], ignore_index=True)

    timing = {}
    t0 = time.perf_counter()
    cache_path = Path(args.outputs_cache) if args.outputs_cache else None
    cache = load_cache(cache_path, model_dir)
    ref_out = outputs_of(model, tokenizer, calibration, dev["text"].tolist(), args.max_length, cache, "dev")
    pools = {
        name: (frame, outputs_of(model, tokenizer, calibration, frame["text"].tolist(), args.max_length, cache, name))
        for name, frame in pools_text.items()
    }
    save_cache(cache_path, model_dir, cache)
    timing["forward_s"] = round(time.perf_counter() - t0, 1)
    reference = est.Reference(ref_out.calibrated, dev["label"].to_numpy(), ref_out.embeddings)
    p = EstimateParams()
    test_frame, test_out = pools["test"]
    baseline, baseline_f1 = est.realised(test_frame["label"].to_numpy(), test_out.calibrated.argmax(axis=1))

    t0 = time.perf_counter()
    results = {}
    for scenario in build_scenarios(test, windows=windows, seed=args.seed, held_out_topic=held_out_topic, quick=args.quick):
        results[scenario.name] = run_scenario(scenario, pools, reference, p, baseline)
        s = results[scenario.name]["summary"]
        if "skipped" in s:
            print(f"{scenario.name:22s} skipped: {s['skipped']}", flush=True)
            continue
        errors = ", ".join(f"{m} {v['mean_abs_error']:.3f}" for m, v in s["methods"].items())
        print(
            f"{scenario.name:22s} acc {s['realised_accuracy']:.3f} drop {s['real_drop']:+.3f} auc {s['domain_auc']:.2f} | {errors}",
            flush=True,
        )
    timing["estimate_s"] = round(time.perf_counter() - t0, 1)

    dev_accuracy, _ = est.realised(dev["label"].to_numpy(), ref_out.calibrated.argmax(axis=1))
    report = {
        "what": "label-free accuracy estimates against realised accuracy, per shift scenario (bench/bench_estimation.py)",
        "model_dir": str(model_dir),
        "probe": probe,
        "calibration": calibration.describe(),
        "dev": {"path": str(dev_path), "rows": len(dev), "accuracy": dev_accuracy},
        "test": {
            "path": str(args.test),
            "rows": len(test),
            "accuracy": baseline,
            "macro_f1": baseline_f1,
            "mean_confidence_raw": est.mean_confidence(test_out.raw),
            "mean_confidence_calibrated": est.mean_confidence(test_out.calibrated),
        },
        "quick": args.quick,
        "estimate_params": {k: getattr(p, k) for k in ("chosen", "level", "draws", "max_weight", "seed")},
        "domain_classifier": {"C": est.DOMAIN_C, "folds": est.DOMAIN_FOLDS},
        "strong_drop": STRONG_DROP,
        "goals": goals(results),
        "scenarios": {name: r["summary"] for name, r in results.items()},
        "windows": {name: r["windows"] for name, r in results.items()},
        "seconds": {**timing, "total_s": round(time.perf_counter() - started, 1)},
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=float))
    text = table(results, baseline)
    if args.table:
        Path(args.table).write_text(text)
    print(text)
    print(json.dumps(report["goals"], indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
