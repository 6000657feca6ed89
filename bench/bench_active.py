"""Which texts are worth labelling? Active-learning strategies against random, on a simulated loop.

  PYTHONPATH=src python bench/bench_active.py --out bench/results/active_cpu.json                   # head learner, minutes
  PYTHONPATH=src python bench/bench_active.py --learner finetune --out bench/results/active_finetune.json  # hours on CPU

Issue 16 asks whether ``finsent label export``'s strategies (``finsent.labelling.select``) spend labels
better than picking at random. Labelling is simulated on TFNS, whose labels we hold but reveal only for
the rows a strategy picks:

- The rows: the honest training rows of the project's prepare stage (``finsent.data.prepare.assemble``:
  the test set's copies dropped and the dev split carved; the dev split is not used here), without the
  rows that near-copy a dev or test row (word-set Jaccard >= ``augment.near_duplicate_threshold``, as
  the augment stage drops them). The test set (TFNS validation) is only ever scored, never picked from.
- Each seed draws its start, ``--start-fraction`` (20%) of those rows, stratified; the pool is a
  stratified ``--pool-rows`` sample of the rest, whose labels stay hidden until picked. Every round is
  scored on the whole test set (``--test-rows`` takes a stratified sample, for quick runs).
- Round 0: fine-tune the base encoder on the start and score the test set. Every arm (``random`` and
  each strategy) starts from these rows, so the round-0 model is trained once per seed and shared (the
  same rows, the same seed: the same model). Each arm then picks ``--per-round`` pool rows with that
  model; their labels are revealed and added.
- Rounds 1..``--rounds``: each arm retrains on its labelled rows, scores the test set, and picks again
  (not after the last). ``--rounds 4`` adds 800 labels in all. What "retrains" means is ``--learner``:
  - ``head`` (the default): a logistic-regression head (``HEAD_C``, standardised inputs) refitted on the
    frozen base encoder's mean-pooled sentence embeddings, computed once for every row and the test
    set. A fit takes about a second and is deterministic, so two arms differ only by what they picked.
  - ``finetune``: the base encoder fine-tuned whole *from the base weights* (``--epochs`` each, the
    ``params.yaml`` train recipe without a dev split, so the last weights are kept; ``train.on_cuda``
    is not applied). Why it is not the default, measured on this CPU (results/active_finetune_partial.json,
    seed 1): one-epoch fine-tunes on 1,654..2,454 rows scored test macro-F1 0.50, 0.50, 0.47, 0.54 and
    0.48 along *random's* five rounds, and 0.28..0.62 across arms; the fit-to-fit noise (about 0.05)
    is larger than anything 200 labels could change, so the arms' comparison measured the noise. More
    epochs would cut the noise and multiply the time: a job for a GPU (seconds per fit), not this CPU.
    (That run shared the machine with a test suite, niced: its times are not idle numbers.)
- Strategies see the round's model as ``finsent label export`` sees the champion: ``uncertainty`` and
  ``margin`` its probabilities on the pool (raw softmax with ``finetune``: the loop has no dev split to
  calibrate on), ``diverse`` and ``drifted`` also its mean-pooled embeddings
  (``finsent.monitoring.drift.champion_outputs``; with ``head``, the frozen encoder's), ``drifted``
  against the embeddings of the arm's labelled rows (its training data). ``random`` draws uniformly
  with ``numpy.random.default_rng([seed, round])``.
- Reported: per arm and round, the labelled rows and the test macro-F1 and accuracy, mean and std over
  seeds; and the labelled rows each arm needs to reach random's final mean macro-F1 (linear between
  rounds, "not reached" if it never does): fewer than random's means the strategy saves labels.

The budget (defaults, MiniLM, 2 idle CPU cores): 8,268 honest training rows, a start of 1,654, a pool of
2,000, 4 rounds of 200, max_length 64 (99.8% of TFNS training texts fit), 3 seeds. With ``head``: the
10,656 embeddings (about 50 s) and 63 fits of a second. With ``finetune``, 1 epoch per fit:
- 3 x (1 shared round-0 fit + 5 arms x 4 rounds) = 63 fits on 1,654..2,454 rows, 134k training samples
  at ``TRAIN_SAMPLES_PER_S``: ~40 min;
- 63 scorings of the 2,388-row test set at ``SCORE_TEXTS_PER_S``: ~10 min;
- per seed 13 looks at the pool (1 shared at round 0, then 4 strategies x 3 rounds) and 4 embeddings of
  ``drifted``'s labelled rows: ~7 min;
- plus loading the encoder for each fit and ``drifted``'s cross-fitted classifier: seconds each.
About an hour. The script prints its estimate before it starts and writes it, with the wall time, into
the JSON (``budget``). A busy machine stretches it (under a load of 7 on the 2 cores, fine-tuning ran
~9x slower): the JSON is rewritten after every arm, and a rerun with the same settings skips the
seeds already finished. Needs torch, transformers, scikit-learn, pandas and finsent (PYTHONPATH=src).

One epoch from the base encoder is a short fine-tune: MiniLM reached test macro-F1 0.374 after one
epoch on 1,500 rows (bench/results/cpu_speed.json) and 0.767 after two on 3,072
(bench/results/recipe_cpu.json). Every arm has the same rows and steps at each round, so the
comparison between arms is fair; but the strategies judge the pool with such a model. ``--epochs 2``
doubles the training part (~80 min).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RANDOM = "random"
HEAD, FINETUNE = "head", "finetune"
HEAD_C = 1.0  # the head's inverse L2 strength, on standardised embeddings (scikit-learn's default)

# Speeds on this machine's 2 idle CPU cores, MiniLM-L6, fp32: what the budget estimate divides by.
TRAIN_SAMPLES_PER_S = 56.0  # finsent.training.train.fit, batch 32, TFNS texts (bench/results/cpu_speed.json)
SCORE_TEXTS_PER_S = 250.0  # predict_proba_encoded: the CLS-only forward of finsent.training.cls_forward
# champion_outputs (every position of the last layer, hidden states kept, batches of 64): 300 TFNS
# texts at max_length 64 took 5.1 CPU-s against the scorer's 4.5 (median of 2, same process, load 7),
# so about 0.9x the scorer's speed.
EMBED_TEXTS_PER_S = 220.0
EMBED_BATCH_SIZE = 64  # champion_outputs' default, as finsent label export embeds

Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Budget:
    """What one run of the bench costs: its settings and the rows they imply."""

    encoder: str
    learner: str
    strategies: tuple[str, ...]
    seeds: tuple[int, ...]
    rounds: int
    per_round: int
    epochs: float
    start_fraction: float
    pool_rows: int
    test_rows: int
    max_length: int

    def settings(self) -> dict[str, Any]:
        """The settings a finished seed must share to be reused by a rerun."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items() if k != "seeds"}


# --- the rows ---------------------------------------------------------------------------------------


def honest_rows(root: Path = ROOT) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """The training rows a strategy may pick from (``text``, ``label``; the row id is the position) and the
    whole test set, as the project's prepare and augment stages leave them."""
    from finsent.augment.overlap import EvalOverlapIndex
    from finsent.config import load_params
    from finsent.data.frames import read_dataset
    from finsent.data.prepare import assemble

    p = load_params(root / "params.yaml")
    train = read_dataset(root / p.data.shipped_dir / "sent_train.csv")
    test = read_dataset(root / p.data.shipped_dir / "sent_valid.csv")
    splits = assemble([train], test, p.data)
    index = EvalOverlapIndex([*splits.dev["text"], *splits.test["text"]], p.augment.near_duplicate_threshold)
    near = np.asarray(index.mask(splits.train["text"].tolist()), dtype=bool)
    rows = splits.train.loc[~near, ["text", "label"]].reset_index(drop=True)
    info = {
        "official_train_rows": len(train),
        "dropped_test_copies": splits.dropped_eval_overlap,
        "dev_rows_carved": len(splits.dev),
        "dropped_near_copies_of_dev_or_test": int(near.sum()),
        "honest_train_rows": len(rows),
        "test_rows_full": len(splits.test),
    }
    return rows, splits.test[["text", "label"]].reset_index(drop=True), info


def stratified_ids(rows: pd.DataFrame, ids: np.ndarray, n: int, seed: int) -> np.ndarray:
    """About ``n`` of ``ids`` keeping the class shares of ``rows`` (all of them when there are fewer)."""
    from finsent.data.frames import stratified_sample

    frame = pd.DataFrame({"row": ids, "label": rows["label"].to_numpy()[ids]})
    return np.sort(stratified_sample(frame, n, seed)["row"].to_numpy(dtype=np.int64))


def start_and_pool(rows: pd.DataFrame, start_fraction: float, pool_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seed's labelled start and its pool of hidden-label rows: disjoint sets of row ids."""
    everything = np.arange(len(rows), dtype=np.int64)
    start = stratified_ids(rows, everything, round(start_fraction * len(rows)), seed)
    rest = np.setdiff1d(everything, start)
    return start, stratified_ids(rows, rest, pool_rows, seed)


def digest(ids: Sequence[int] | np.ndarray) -> str:
    """A short fingerprint of a set of row ids (order ignored)."""
    return hashlib.sha256(np.sort(np.asarray(ids, dtype=np.int64)).tobytes()).hexdigest()[:16]


# --- the loop ---------------------------------------------------------------------------------------


def estimate_seconds(b: Budget, start_rows: int, rows: int = 0) -> dict[str, float]:
    """The expected time of a run on idle cores, by part (see the speed constants). ``rows``: the honest
    training rows, which the head learner embeds once with the test set (its fits take a second each)."""
    if b.learner == HEAD:
        embed = (rows + b.test_rows) / EMBED_TEXTS_PER_S
        return {"embed": round(embed), "total": round(embed)}
    arms = len(b.strategies)
    learners = [s for s in b.strategies if s != RANDOM]
    labelled = [start_rows + r * b.per_round for r in range(1, b.rounds + 1)]
    train = b.epochs * (start_rows + arms * sum(labelled)) / TRAIN_SAMPLES_PER_S
    test = (1 + arms * b.rounds) * b.test_rows / SCORE_TEXTS_PER_S

    def outputs(strategies: set[str], labelled_rows: int) -> float:
        """Seconds for the pool outputs that ``strategies`` need under one model."""
        embedded = bool(strategies & {"diverse", "drifted"})
        seconds = b.pool_rows / (EMBED_TEXTS_PER_S if embedded else SCORE_TEXTS_PER_S) if strategies else 0.0
        return seconds + (labelled_rows / EMBED_TEXTS_PER_S if "drifted" in strategies else 0.0)

    shared = outputs(set(learners), start_rows)  # round 0: one model for every arm
    later = sum(outputs({s}, n) for s in learners for n in labelled[:-1])
    seeds = len(b.seeds)
    parts = {"train": seeds * train, "score_test": seeds * test, "pick": seeds * (shared + later)}
    return {**{k: round(v) for k, v in parts.items()}, "total": round(sum(parts.values()))}


@dataclasses.dataclass
class ModelView:
    """What the strategies may know of the pool under one model, computed once and only when asked."""

    model: Any
    tokenizer: Any
    max_length: int
    pool_texts: list[str]
    labelled_texts: list[str]
    _probs: np.ndarray | None = None
    _embeddings: np.ndarray | None = None
    _reference: np.ndarray | None = None

    def probs(self) -> np.ndarray:
        if self._probs is None:
            from finsent.training.features import encode_texts
            from finsent.training.score import predict_proba_encoded

            self._probs = predict_proba_encoded(self.model, encode_texts(self.tokenizer, self.pool_texts, self.max_length))
        return self._probs

    def embeddings(self) -> np.ndarray:
        if self._embeddings is None:
            from finsent.monitoring.drift import champion_outputs

            self._embeddings, probs = champion_outputs(
                self.model, self.tokenizer, self.pool_texts, max_length=self.max_length, batch_size=EMBED_BATCH_SIZE
            )
            if self._probs is None:  # the same numbers as the scorer's, to float rounding: every arm sees one set
                self._probs = probs
        return self._embeddings

    def reference(self) -> np.ndarray:
        if self._reference is None:
            from finsent.monitoring.drift import embed

            self._reference = embed(
                self.model, self.tokenizer, self.labelled_texts, max_length=self.max_length, batch_size=EMBED_BATCH_SIZE
            )
        return self._reference


def pick(strategy: str, pool: np.ndarray, view: ModelView | HeadView, n: int, seed: int, round_: int) -> np.ndarray:
    """The ``n`` pool row ids ``strategy`` labels next (``view`` describes the pool in the order of ``pool``)."""
    from finsent.config import LabelParams
    from finsent.labelling.select import choose

    if strategy == RANDOM:
        return np.random.default_rng([seed, round_]).choice(pool, size=min(n, len(pool)), replace=False)
    needs_embeddings = strategy in {"diverse", "drifted"}
    embeddings = view.embeddings() if needs_embeddings else None
    reference = view.reference() if strategy == "drifted" else None
    label_params = dataclasses.replace(LabelParams(), n=n, strategy=strategy, seed=seed)
    selection = choose(strategy, pool, view.probs(), embeddings, n, label_params, reference_embeddings=reference)
    return np.asarray(selection.ids, dtype=np.int64)


class FineTuneLearner:
    """Each round fine-tunes the base encoder whole on the labelled rows (``--epochs``), as retraining would."""

    def __init__(self, base_params: Any, rows: pd.DataFrame, test: pd.DataFrame, max_length: int) -> None:
        self.base_params, self.rows, self.test, self.max_length = base_params, rows, test, max_length
        self.texts = rows["text"].tolist()
        self.y_test = test["label"].to_numpy(dtype=np.int64)
        self._test_encoded = None

    def fit(self, ids: np.ndarray, seed: int) -> tuple[Any, float]:
        from finsent.training.train import fit_frames

        p = dataclasses.replace(self.base_params, seed=seed)
        tokenizer, model, stats = fit_frames(p, self.rows.iloc[ids].reset_index(drop=True), None, log=lambda _: None)
        return (tokenizer, model), stats["seconds"]

    def score(self, fitted: Any) -> dict[str, float]:
        from finsent.training.features import encode_texts
        from finsent.training.score import predict_proba_encoded

        tokenizer, model = fitted
        if self._test_encoded is None:
            self._test_encoded = encode_texts(tokenizer, self.test["text"].tolist(), self.max_length)
        return test_metrics(self.y_test, predict_proba_encoded(model, self._test_encoded).argmax(1))

    def view(self, fitted: Any, pool: np.ndarray, labelled: np.ndarray) -> ModelView:
        tokenizer, model = fitted
        return ModelView(model, tokenizer, self.max_length, [self.texts[i] for i in pool], [self.texts[i] for i in labelled])


@dataclasses.dataclass
class HeadView:
    """The pool under the head learner: its probabilities, and the frozen encoder's embeddings."""

    head: Any
    embeddings_all: np.ndarray
    pool: np.ndarray
    labelled: np.ndarray

    def probs(self) -> np.ndarray:
        return self.head.predict_proba(self.embeddings_all[self.pool])

    def embeddings(self) -> np.ndarray:
        return self.embeddings_all[self.pool]

    def reference(self) -> np.ndarray:
        return self.embeddings_all[self.labelled]


class HeadLearner:
    """Each round refits a logistic-regression head on the frozen base encoder's sentence embeddings
    (mean-pooled, computed once for every row and the test set). A fit is deterministic and takes about a
    second, so two arms differ only by the rows they picked: the comparison the strategies need, which
    one-epoch fine-tunes could not give on this CPU (see the module docstring)."""

    def __init__(self, encoder: str, rows: pd.DataFrame, test: pd.DataFrame, max_length: int) -> None:
        from finsent.monitoring.drift import embed
        from finsent.training.model import load_classifier

        tokenizer, model = load_classifier(encoder)
        model.eval()
        self.embeddings = embed(model, tokenizer, rows["text"].tolist(), max_length=max_length, batch_size=EMBED_BATCH_SIZE)
        self.test_embeddings = embed(model, tokenizer, test["text"].tolist(), max_length=max_length, batch_size=EMBED_BATCH_SIZE)
        self.y = rows["label"].to_numpy(dtype=np.int64)
        self.y_test = test["label"].to_numpy(dtype=np.int64)

    def fit(self, ids: np.ndarray, seed: int) -> tuple[Any, float]:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        started = time.perf_counter()
        head = make_pipeline(StandardScaler(), LogisticRegression(C=HEAD_C, max_iter=2000))
        head.fit(self.embeddings[ids], self.y[ids])
        return head, time.perf_counter() - started

    def score(self, fitted: Any) -> dict[str, float]:
        return test_metrics(self.y_test, fitted.predict(self.test_embeddings))

    def view(self, fitted: Any, pool: np.ndarray, labelled: np.ndarray) -> HeadView:
        return HeadView(fitted, self.embeddings, pool, labelled)


def test_metrics(y_test: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import f1_score

    return {"macro_f1": float(f1_score(y_test, predicted, average="macro")), "accuracy": float((predicted == y_test).mean())}


def class_counts(rows: pd.DataFrame, ids: np.ndarray) -> list[int]:
    return np.bincount(rows["label"].to_numpy()[ids], minlength=3).astype(int).tolist()


def run_seed(b: Budget, rows: pd.DataFrame, seed: int, learner: Any, log: Log, on_arm: Callable[[dict], None]) -> dict:
    """Every arm of one seed, from one shared start. ``on_arm`` sees the seed's record after each arm."""
    start, pool = start_and_pool(rows, b.start_fraction, b.pool_rows, seed)
    record: dict[str, Any] = {
        "seed": seed,
        "start_rows": len(start),
        "start_class_counts": class_counts(rows, start),
        "start_digest": digest(start),
        "pool_ids": pool.tolist(),
        "arms": {},
    }

    started = time.perf_counter()
    fitted, fit_seconds = learner.fit(start, seed)
    round0 = {"round": 0, "labelled": len(start), **learner.score(fitted), "fit_seconds": fit_seconds}
    record["round0_seconds"] = time.perf_counter() - started
    log(f"seed {seed} round 0: {len(start)} labelled, test macro-F1 {round0['macro_f1']:.4f}")
    shared = learner.view(fitted, pool, start)
    first_picks: dict[str, tuple[np.ndarray, float]] = {}
    for strategy in b.strategies:  # the shared model's pool outputs are computed once, for the first who needs them
        t = time.perf_counter()
        chosen = pick(strategy, pool, shared, b.per_round, seed, 0)
        first_picks[strategy] = (chosen, time.perf_counter() - t)
    del fitted, shared

    for strategy in b.strategies:
        arm_started = time.perf_counter()
        labelled, remaining = start.copy(), pool.copy()
        arm: dict[str, Any] = {"start_digest": digest(labelled), "rounds": []}
        picked, pick_seconds = first_picks[strategy]
        arm["rounds"].append(
            {**round0, "pick_seconds": pick_seconds, "picked": picked.tolist(), "picked_class_counts": class_counts(rows, picked)}
        )
        for round_ in range(1, b.rounds + 1):
            if not np.isin(picked, remaining).all() or len(np.unique(picked)) != len(picked):
                raise RuntimeError(f"{strategy} picked rows outside its pool or twice (seed {seed}, round {round_ - 1})")
            labelled = np.concatenate([labelled, picked])
            remaining = np.setdiff1d(remaining, picked)
            fitted, fit_seconds = learner.fit(labelled, seed)
            entry = {"round": round_, "labelled": len(labelled), **learner.score(fitted), "fit_seconds": fit_seconds}
            if round_ < b.rounds:
                t = time.perf_counter()
                picked = pick(strategy, remaining, learner.view(fitted, remaining, labelled), b.per_round, seed, round_)
                entry |= {
                    "pick_seconds": time.perf_counter() - t,
                    "picked": picked.tolist(),
                    "picked_class_counts": class_counts(rows, picked),
                }
            arm["rounds"].append(entry)
            log(f"seed {seed} {strategy} round {round_}: {len(labelled)} labelled, test macro-F1 {entry['macro_f1']:.4f}")
            del fitted
        arm["seconds"] = time.perf_counter() - arm_started
        record["arms"][strategy] = arm
        on_arm(record)
    return record


# --- the report -------------------------------------------------------------------------------------


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def labels_to_reach(labelled: Sequence[float], scores: Sequence[float], target: float) -> float | None:
    """The labelled rows at which the curve first reaches ``target``, linear between rounds; None if never."""
    for i, (n, score) in enumerate(zip(labelled, scores)):
        if score >= target:
            if i == 0:
                return float(n)
            n0, s0 = labelled[i - 1], scores[i - 1]
            return float(n0 + (target - s0) / (score - s0) * (n - n0))
    return None


def summarise(results: dict) -> dict:
    """Mean curves over the finished seeds, and the labels each arm needs to reach random's final macro-F1."""
    seeds = [r for r in results["runs"].values() if set(r["arms"]) == set(results["budget"]["settings"]["strategies"])]
    summary: dict[str, Any] = {"seeds": [r["seed"] for r in seeds], "strategies": {}}
    if not seeds:
        return summary
    for strategy in results["budget"]["settings"]["strategies"]:
        curves = [r["arms"][strategy]["rounds"] for r in seeds]
        rounds = []
        for i in range(len(curves[0])):
            f1, acc = mean_std([c[i]["macro_f1"] for c in curves]), mean_std([c[i]["accuracy"] for c in curves])
            rounds.append(
                {
                    "round": i,
                    "labelled": curves[0][i]["labelled"],
                    "macro_f1_mean": f1[0],
                    "macro_f1_std": f1[1],
                    "accuracy_mean": acc[0],
                    "accuracy_std": acc[1],
                }
            )
        summary["strategies"][strategy] = {"rounds": rounds}
    if RANDOM in summary["strategies"]:
        target = summary["strategies"][RANDOM]["rounds"][-1]["macro_f1_mean"]
        summary["random_final_macro_f1"] = target
        for entry in summary["strategies"].values():
            curve = entry["rounds"]
            entry["labels_to_reach_random_final"] = labels_to_reach(
                [r["labelled"] for r in curve], [r["macro_f1_mean"] for r in curve], target
            )
        needed = summary["strategies"][RANDOM]["labels_to_reach_random_final"]
        for entry in summary["strategies"].values():
            own = entry["labels_to_reach_random_final"]
            entry["labels_saved_vs_random"] = None if own is None or needed is None else needed - own
    return summary


def markdown_table(results: dict) -> str:
    summary = results["summary"]
    if not summary.get("strategies"):
        return "(no seed finished)"
    first = next(iter(summary["strategies"].values()))["rounds"]
    reach = RANDOM in summary["strategies"]
    headers = ["strategy", *(f"round {r['round']} ({r['labelled']} rows)" for r in first)]
    if reach:
        headers.append(f"labelled rows to reach random's final {summary['random_final_macro_f1']:.4f}")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for strategy, entry in summary["strategies"].items():
        cells = [strategy, *(f"{r['macro_f1_mean']:.4f} ± {r['macro_f1_std']:.4f}" for r in entry["rounds"])]
        if reach:
            needed, saved = entry["labels_to_reach_random_final"], entry["labels_saved_vs_random"]
            cells.append(
                "not reached"
                if needed is None
                else f"{needed:.0f}" + ("" if strategy == RANDOM or saved is None else f" ({saved:+.0f} vs random)")
            )
        lines.append("| " + " | ".join(cells) + " |")
    seeds = ", ".join(str(s) for s in summary["seeds"])
    return "\n".join(lines) + f"\n\nTest macro-F1, mean ± std over seeds {seeds}."


# --- the command ------------------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    from finsent.config import LABEL_STRATEGIES, PACKAGED_ENCODER

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learner", choices=[HEAD, FINETUNE], default=HEAD, help="what each round retrains (module docstring)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--rounds", type=int, default=4, help="rounds of --per-round new labels after the start")
    parser.add_argument("--per-round", type=int, default=200)
    parser.add_argument("--epochs", type=float, default=1.0, help="epochs of each fine-tune (from the base encoder)")
    parser.add_argument("--strategies", nargs="+", default=[RANDOM, *LABEL_STRATEGIES], choices=[RANDOM, *LABEL_STRATEGIES])
    parser.add_argument("--start-fraction", type=float, default=0.2, help="share of the honest training rows labelled at the start")
    parser.add_argument("--pool-rows", type=int, default=2000, help="stratified sample of the other rows to pick from")
    parser.add_argument("--test-rows", type=int, default=None, help="a stratified sample of the test set (default: all of it)")
    parser.add_argument("--max-length", type=int, default=64, help="token cap (99.8%% of TFNS training texts fit in 64)")
    parser.add_argument("--encoder", default=PACKAGED_ENCODER, help="base encoder: the packaged MiniLM or a model folder")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "active_cpu.json")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.per_round < 1 or args.pool_rows < 1 or (args.test_rows or 1) < 1 or not 0.0 < args.start_fraction < 1.0:
        parser.error("--rounds, --per-round, --pool-rows and --test-rows must be >= 1, --start-fraction in (0, 1)")
    if args.rounds * args.per_round > args.pool_rows:
        parser.error(f"{args.rounds} rounds of {args.per_round} need a pool of at least {args.rounds * args.per_round} rows")
    return args


def main(argv: Sequence[str] | None = None, log: Log = print) -> dict:
    from finsent.env import apply_quiet_offline

    apply_quiet_offline()
    import torch

    from finsent.config import load_params
    from finsent.data.frames import stratified_sample
    from finsent.training.model import choose_device

    args = parse(argv)
    wall_started = time.perf_counter()
    rows, test_full, data_info = honest_rows()
    data_seed = load_params(ROOT / "params.yaml").data.seed
    test = stratified_sample(test_full, args.test_rows, data_seed)
    b = Budget(
        encoder=args.encoder,
        learner=args.learner,
        strategies=tuple(dict.fromkeys(args.strategies)),
        seeds=tuple(dict.fromkeys(args.seeds)),
        rounds=args.rounds,
        per_round=args.per_round,
        epochs=args.epochs,
        start_fraction=args.start_fraction,
        pool_rows=args.pool_rows,
        test_rows=len(test),
        max_length=args.max_length,
    )
    base = load_params(ROOT / "params.yaml").train
    base_params = dataclasses.replace(
        base, base_model=b.encoder, epochs=b.epochs, max_length=b.max_length, progress=False, checkpoint_every_minutes=0.0, on_cuda={}
    )
    device = choose_device(base_params.device)
    start_rows = round(b.start_fraction * len(rows))
    estimate = estimate_seconds(b, start_rows, len(rows))
    log(f"budget: {json.dumps(b.settings())} seeds {list(b.seeds)}; estimate for MiniLM on 2 idle cores (s): {estimate}")

    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    reusable = previous.get("budget", {}).get("settings") == b.settings()
    results: dict[str, Any] = {
        "benchmark": "active learning on a simulated labelling loop (issue 16)",
        "budget": {
            "settings": b.settings(),
            "seeds": list(b.seeds),
            "start_rows": start_rows,
            "labelled_rows_per_round": [start_rows + r * b.per_round for r in range(b.rounds + 1)],
            "fits": len(b.seeds) * (1 + len(b.strategies) * b.rounds),
            "train_samples": round(
                len(b.seeds)
                * b.epochs
                * (start_rows + len(b.strategies) * sum(start_rows + r * b.per_round for r in range(1, b.rounds + 1)))
            ),
            "estimate_seconds_idle": estimate,
            "speeds_assumed": {
                "train_samples_per_s": TRAIN_SAMPLES_PER_S,
                "score_texts_per_s": SCORE_TEXTS_PER_S,
                "embed_texts_per_s": EMBED_TEXTS_PER_S,
            },
            "train_params": {
                k: getattr(base_params, k)
                for k in (
                    "batch_size",
                    "learning_rate",
                    "epochs",
                    "max_length",
                    "schedule",
                    "warmup_fraction",
                    "label_smoothing",
                    "rdrop_alpha",
                    "class_weighting",
                )
            },
        },
        "data": {
            **data_info,
            "test_rows_scored": len(test),
            "test_class_counts": np.bincount(test["label"], minlength=3).astype(int).tolist(),
        },
        "host": platform.node(),
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "runs": {
            k: v for k, v in previous.get("runs", {}).items() if reusable and int(k) in b.seeds and set(v["arms"]) == set(b.strategies)
        },
    }

    def save(seed_record: dict | None = None) -> None:
        if seed_record is not None:
            results["runs"][str(seed_record["seed"])] = seed_record
        results["summary"] = summarise(results)
        results["budget"]["wall_seconds"] = round(time.perf_counter() - wall_started, 1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))

    learner = None
    for seed in b.seeds:
        if str(seed) in results["runs"]:
            log(f"seed {seed}: already in {args.out}, skipped")
            continue
        if learner is None:  # built on the first seed that runs: the head learner embeds every row once
            learner = (
                HeadLearner(b.encoder, rows, test, b.max_length)
                if b.learner == HEAD
                else FineTuneLearner(base_params, rows, test, b.max_length)
            )
        run_seed(b, rows, seed, learner, log, save)
    save()
    table = markdown_table(results)
    results["table"] = table
    save()
    log(table)
    log(
        f"wall time {results['budget']['wall_seconds']:.0f} s (estimate for MiniLM on idle cores {estimate['total']} s); written to {args.out}"
    )
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
