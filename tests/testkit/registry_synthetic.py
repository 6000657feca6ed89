"""Registering models whose evaluation predictions the test controls, into a real MLflow store.

The registry does not need a trained model to be tested: the gate reads the challenger's
``eval/predictions.csv`` and, for the champion, the predictions logged with it. Each synthetic model
is the tiny random BERT (so the version has real files) plus probabilities that are right on a
chosen share of each class's rows. The behaviour suite result is passed in, not scored.

Also runnable as a module (``python -m testkit.registry_synthetic SPEC_JSON``, with tests/ on
PYTHONPATH) so that a test can start registrations in separate OS processes.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from finsent.config import Params, load_params, replace
from finsent.data.frames import read_dataset
from finsent.evaluation.behaviour import TEST_TYPES, BehaviourResult
from finsent.vocabulary import LABELS, PROBABILITY_COLUMNS

MODEL = "finsent-sentiment"
# The synthetic probabilities put 0.9 on the predicted class, so ECE is |accuracy - 0.9|: a bound of 1
# keeps calibration out of these decisions (finsent.gate's own tests cover it).
GATE = {"min_macro_f1": 0.0, "max_ece": 1.0}


def relaxed_params(root: Path, **gate) -> Params:
    return replace(load_params(root / "params.yaml"), gate={**GATE, **gate})


def eval_path(root: Path, p: Params) -> Path:
    return root / p.data.data_dir / p.data.eval_file


def train_path(root: Path, p: Params) -> Path:
    return root / p.data.data_dir / p.data.train_file


def passing_behaviour() -> BehaviourResult:
    return BehaviourResult(
        pass_rates={t: 1.0 for t in TEST_TYPES},
        counts={t: {"passed": 10, "total": 10} for t in TEST_TYPES},
        class_pass_rates={name: 1.0 for name in LABELS},
    )


def correct_mask(labels: np.ndarray, share: float, swap: int = 0) -> np.ndarray:
    """Right on the first ``share`` of each class's rows (so a larger share is a superset: no class or
    slice gets worse). ``swap`` moves that many right answers per class to other rows of the class:
    the same accuracy and recall, different errors."""
    mask = np.zeros(len(labels), dtype=bool)
    for label in range(len(LABELS)):
        rows = np.flatnonzero(labels == label)
        k = int(round(share * len(rows)))
        mask[rows[:k]] = True
        if swap:
            mask[rows[k - swap : k]] = False
            mask[rows[k : k + swap]] = True
    return mask


def synthetic_probs(labels: np.ndarray, correct: np.ndarray) -> np.ndarray:
    predicted = np.where(correct, labels, (labels + 1) % len(LABELS))
    probs = np.full((len(labels), len(LABELS)), 0.05)
    probs[np.arange(len(labels)), predicted] = 0.9
    return probs


def write_model_dirs(
    out: Path, model_dir: Path, eval_df: pd.DataFrame, probs: np.ndarray, p: Params, train_rows: Path
) -> tuple[Path, Path]:
    """data/train.csv, train_dir (model/, train_summary.json) and eval_dir (metrics.json,
    predictions.csv) as the prepare, train and evaluate stages write them."""
    from finsent.evaluation.evaluate import compute_metrics

    train_dir, eval_dir = out / "train", out / "eval"
    (out / "data").mkdir(parents=True)
    shutil.copy(train_rows, out / "data" / "train.csv")
    shutil.copytree(model_dir, train_dir / "model")
    (train_dir / "train_summary.json").write_text(json.dumps({"seconds": 1.0, "samples_per_second": 100.0, "final_loss": 0.5, "steps": 10}))
    eval_dir.mkdir(parents=True)
    labels = eval_df["label"].to_numpy()
    metrics = compute_metrics(labels, probs, eval_df["text"], p.evaluate)
    (eval_dir / "metrics.json").write_text(json.dumps(metrics))
    frame = pd.DataFrame(probs, columns=PROBABILITY_COLUMNS)
    frame.insert(0, "predicted", probs.argmax(axis=1))
    frame.insert(0, "label", labels)
    frame.to_csv(eval_dir / "predictions.csv", index=False)
    return train_dir, eval_dir


def register_synthetic(root: Path, model_dir: Path, share: float, swap: int = 0, p: Params | None = None, tag: str = ""):
    """Register one synthetic model that is right on ``share`` of each class; returns the summary."""
    from finsent.data import versioning
    from finsent.registry import register

    p = p or relaxed_params(root)
    path = eval_path(root, p)
    eval_df = read_dataset(path)
    probs = synthetic_probs(eval_df["label"].to_numpy(), correct_mask(eval_df["label"].to_numpy(), share, swap))
    out = root / "artifacts" / "synthetic" / f"{share:.3f}-{swap}-{tag}-{time.time_ns()}"
    train_dir, eval_dir = write_model_dirs(out, model_dir, eval_df, probs, p, train_path(root, p))
    return register.run(
        p,
        root,
        train_dir,
        eval_dir,
        path,
        versioning.current_version(root),
        {"success": True, "rows": len(eval_df)},
        behaviour=passing_behaviour(),
    )


def client_for(root: Path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{root}/mlflow.db"
    return MlflowClient(uri, registry_uri=uri)  # else the registry is whichever store mlflow last pointed at


def champion(root: Path) -> str | None:
    from finsent.registry.versions import CHAMPION, alias_version

    return alias_version(client_for(root), MODEL, CHAMPION)


def aliases(root: Path) -> dict[str, list[str]]:
    """Every version and its aliases (read one by one: SQLite search results leave aliases empty)."""
    client = client_for(root)
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{MODEL}'"))
    return {str(v): sorted(client.get_model_version(MODEL, str(v)).aliases) for v in versions}


def delete_model_files(root: Path, version: str, with_run: bool = False) -> None:
    """Delete a version's model folder under mlruns/ (and its training run's artifacts)."""
    from urllib.parse import unquote, urlparse

    client = client_for(root)
    model_files = Path(unquote(urlparse(client.get_model_version_download_uri(MODEL, version)).path))
    assert root / "mlruns" in model_files.parents, model_files
    shutil.rmtree(model_files.parent)
    if with_run:
        run = client.get_run(client.get_model_version(MODEL, version).run_id)
        shutil.rmtree(Path(unquote(urlparse(run.info.artifact_uri).path)))


def _child(spec: dict) -> None:
    """One registration in its own process: wait for the start file, register, write the summary."""
    from dataclasses import asdict

    from finsent.env import apply_quiet_offline

    apply_quiet_offline()
    import finsent.registry.register  # noqa: F401 - import before the start, so both processes register together

    root, start = Path(spec["root"]), Path(spec["start_file"])
    p = relaxed_params(root)
    deadline = time.monotonic() + 120
    while not start.exists():  # both processes have imported everything; start them together
        if time.monotonic() > deadline:
            raise SystemExit("start file never appeared")
        time.sleep(0.01)
    if spec.get("parties"):
        hold_at_lock_until_all_arrive(Path(spec["barrier_dir"]), spec["tag"], spec["parties"])
    summary = register_synthetic(root, Path(spec["model_dir"]), spec["share"], p=p, tag=spec["tag"])
    Path(spec["result"]).write_text(json.dumps(asdict(summary)))


def hold_at_lock_until_all_arrive(barrier_dir: Path, tag: str, parties: int, timeout_s: float = 240) -> None:
    """Make every process reach the promotion lock (its run logged, its version registered) before
    any of them takes it, so the decisions are certain to race, however slow the machine."""
    import contextlib

    from finsent.registry import versions

    real_lock = versions.promotion_lock

    @contextlib.contextmanager
    def lock_after_barrier(*args, **kwargs):
        barrier_dir.mkdir(parents=True, exist_ok=True)
        (barrier_dir / tag).touch()
        deadline = time.monotonic() + timeout_s
        while len(list(barrier_dir.iterdir())) < parties:
            if time.monotonic() > deadline:
                raise SystemExit("the other registration never reached the promotion lock")
            time.sleep(0.01)
        with real_lock(*args, **kwargs):
            yield

    versions.promotion_lock = lock_after_barrier


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))
