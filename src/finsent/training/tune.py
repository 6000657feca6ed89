"""Hyper-parameter search: Optuna trials that train on the training split and are scored on dev.

The test set never enters: a trial reads the training rows and the dev split only, and the value it
reports (and prunes on) is the dev macro-F1 of the weights the dev split selected.

The study lives in an Optuna RDB storage (SQLite under artifacts/ by default), so a search is
resumable: a rerun counts the finished trials and runs only the missing ones; a trial left running by
an interrupted search is marked failed and queued again with the same values. Each trial is a nested
MLflow run under one parent run per study. The best trial's values are written into a params file
(``tune.write_params_to``; by default the params file the search ran with) that the training flow reads.

``flows/tuning.py`` runs trials as parallel Prefect tasks; this module knows nothing of Prefect.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from finsent.config import Params, TrainParams, TuneParams
from finsent.data.frames import read_dataset, stratified_sample
from finsent.errors import FinsentError
from finsent.files import atomic_path
from finsent.paths import Layout, is_server_database, resolve_url, shown_url, sqlite_path

PARENT_RUN_ATTR = "mlflow_parent_run_id"
BASIS_ATTR = "basis"
# Train settings that change how a trial runs, not what its dev score means.
RUN_ONLY_TRAIN_KEYS = frozenset({"device", "progress", "checkpoint_every_minutes", "num_threads"})


class TuneError(FinsentError, RuntimeError):
    """The search cannot run or produced no usable trial."""


@dataclass(frozen=True)
class Search:
    """What each trial task needs to join the study (picklable, so trials can run anywhere)."""

    study_name: str
    storage: str
    parent_run_id: str
    experiment_id: str
    trials_left: int
    requeued: list[int]


@dataclass(frozen=True)
class TrialResult:
    number: int
    state: str  # COMPLETE | PRUNED | FAIL
    value: float | None
    params: dict[str, Any]
    run_id: str
    seconds: float
    error: str | None = None


@dataclass(frozen=True)
class TrialRecord:
    """One trial of the study as stored, whichever search ran it (a resumed study holds earlier ones)."""

    number: int
    state: str  # COMPLETE | PRUNED | FAIL | RUNNING | WAITING
    value: float | None  # dev macro-F1, for a complete trial
    params: dict[str, Any]
    baseline: bool = False  # the settings in effect before the search
    interrupted: bool = False  # failed because a search died; queued again under a new number
    seconds: float | None = None


@dataclass(frozen=True)
class SearchSummary:
    study_name: str
    best_trial: int
    best_dev_macro_f1: float
    best_params: dict[str, Any]
    baseline_dev_macro_f1: float | None
    trials: dict[str, int]  # by state
    params_file: str
    written: dict[str, Any]  # dotted key -> value written
    parent_run_id: str


# --- the search space --------------------------------------------------------------------------


def distributions(space: dict[str, dict]) -> dict:
    """Optuna distributions for ``tune.search_space``: choices are categorical; int bounds give an
    integer range; anything else a float range (``log``, ``step`` as given)."""
    import optuna

    out = {}
    for key, spec in space.items():
        if "choices" in spec:
            out[key] = optuna.distributions.CategoricalDistribution(spec["choices"])
        elif all(isinstance(spec[b], int) for b in ("low", "high")) and isinstance(spec.get("step", 1), int):
            out[key] = optuna.distributions.IntDistribution(spec["low"], spec["high"], log=bool(spec.get("log")), step=spec.get("step", 1))
        else:
            out[key] = optuna.distributions.FloatDistribution(spec["low"], spec["high"], log=bool(spec.get("log")), step=spec.get("step"))
    return out


def current_values(train: TrainParams, space: dict[str, dict], on_cuda: bool) -> dict[str, Any]:
    """The settings in effect now for the searched keys: the study's first trial."""
    values = {key: getattr(train, key) for key in space}
    if on_cuda:
        values |= {k: v for k, v in train.on_cuda.items() if k in space}
    return values


def trial_train_params(train: TrainParams, tune: TuneParams, values: dict[str, Any], device: str | None) -> TrainParams:
    """The train settings of one trial: the searched values win over ``train`` and ``train.on_cuda``."""
    overrides = dict(values)
    if tune.epochs is not None and "epochs" not in values:
        overrides["epochs"] = tune.epochs
    on_cuda = {k: v for k, v in train.on_cuda.items() if k not in overrides}
    # Trials side by side on one CPU share its cores instead of each asking for all of them.
    threads = train.num_threads or (max(1, (os.cpu_count() or 1) // tune.parallel_trials) if tune.parallel_trials > 1 else None)
    return dataclasses.replace(
        train,
        **overrides,
        on_cuda=on_cuda,
        device=device or train.device,
        progress=False,
        checkpoint_every_minutes=0.0,
        num_threads=threads,
    )


def study_basis(p: Params, data_md5: str | None) -> dict[str, Any]:
    """What a trial's dev score depends on besides its searched values: the data version (the labelled
    data and the training rows derived from it, see ``open_search``), the fixed train settings and the
    trial budget. A study's trials are comparable only under one basis."""
    train = {k: v for k, v in dataclasses.asdict(p.train).items() if k not in RUN_ONLY_TRAIN_KEYS and k != "on_cuda"}
    train |= {f"on_cuda.{k}": v for k, v in p.train.on_cuda.items()}
    if p.tune.epochs is not None:  # trials train for tune.epochs: the train setting does not reach them
        train = {k: v for k, v in train.items() if k.rsplit(".", 1)[-1] != "epochs"}
    basis = {
        "data_version": data_md5,
        "train": train,
        "trial_budget": {"max_train_rows": p.tune.max_train_rows, "epochs": p.tune.epochs},
        "searched": sorted(p.tune.search_space),
    }
    return json.loads(json.dumps(basis, default=str))  # as the storage will give it back


def basis_changes(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``old -> new`` for each part of the basis that differs. A key searched in either study is
    skipped (its value is the trial's own); so is a data version one side does not know. Widening or
    narrowing the search space is allowed: the scores stay comparable."""
    changes = []
    old_data, new_data = recorded.get("data_version"), current.get("data_version")
    if old_data and new_data and old_data != new_data:
        changes.append(f"data version: {old_data} -> {new_data}")
    searched = set(recorded.get("searched", [])) | set(current["searched"])
    for part in ("train", "trial_budget"):
        old, new = recorded.get(part, {}), current[part]
        for key in sorted(set(old) | set(new)):
            if key.rsplit(".", 1)[-1] not in searched and old.get(key) != new.get(key):
                changes.append(f"{'tune' if part == 'trial_budget' else 'train'}.{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return changes


def trial_device(tune: TuneParams, number: int) -> str | None:
    return tune.devices[number % len(tune.devices)] if tune.devices else None


def waves(trials_left: int, parallel: int) -> list[int]:
    """How many trials to start together, wave after wave."""
    return [min(parallel, trials_left - start) for start in range(0, trials_left, parallel)]


# --- the study ---------------------------------------------------------------------------------


def storage_url(tune: TuneParams, root: Path) -> str:
    """``tune.storage`` with a relative SQLite path made absolute under ``root`` (and its folder made)."""
    url = resolve_url(tune.storage, root)
    db = sqlite_path(url)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    return url


# Seconds to wait for a database server's connection: an unreachable host would otherwise hang the
# search for the driver's default (minutes) before saying anything.
STORAGE_CONNECT_TIMEOUT_S = 10


def open_storage(url: str):
    import optuna

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Trials in parallel write to one SQLite file: wait for its lock instead of failing.
        kwargs = {"connect_args": {"timeout": 60}}
    elif is_server_database(url):
        kwargs = {"connect_args": {"connect_timeout": STORAGE_CONNECT_TIMEOUT_S}}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's and Optuna's errors alike
        reason = str(getattr(exc, "orig", None) or exc).strip()
        reason = reason.splitlines()[0] if reason else type(exc).__name__
        raise TuneError(f"cannot open the Optuna storage {shown_url(url)}: {reason}") from exc


def check_storage(tune: TuneParams, root: Path) -> None:
    """Fail before the data stages when the study's storage cannot be opened (down, no driver, bad URL)."""
    open_storage(storage_url(tune, root))


def load_study(tune: TuneParams, url: str, *, create: bool = False):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=tune.seed, n_startup_trials=min(10, max(2, tune.n_trials // 3)))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2) if tune.pruning else optuna.pruners.NopPruner()
    storage = open_storage(url)
    if create:
        return optuna.create_study(
            study_name=tune.study_name, storage=storage, sampler=sampler, pruner=pruner, direction="maximize", load_if_exists=True
        )
    return optuna.load_study(study_name=tune.study_name, storage=storage, sampler=sampler, pruner=pruner)


def requeue_interrupted(study) -> list[int]:
    """Trials still RUNNING when a search starts were left by one that died: mark them failed
    (``interrupted``) and queue their values again. Call only while no other search runs this study."""
    from optuna.trial import TrialState

    storage = study._storage  # the study's own storage object: the public API has no "fail this trial"
    study_id = storage.get_study_id_from_name(study.study_name)
    requeued = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_user_attr(trial_id, "interrupted", True)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        study.enqueue_trial(
            trial.params, user_attrs={"retry_of": trial.number, **{k: v for k, v in trial.user_attrs.items() if k == "baseline"}}
        )
        requeued.append(trial.number)
    return requeued


def ask_lock(url: str):
    """Serialise ``study.ask`` on a SQLite storage: SQLite ignores the row lock Optuna takes to hand a
    queued trial to one worker, and two parallel trials could both take it. Other RDBs lock the row."""
    from filelock import FileLock

    db = sqlite_path(url)
    if db is None:
        return contextlib.nullcontext()
    return FileLock(str(db) + ".ask.lock", timeout=120)


def finished_trials(study) -> int:
    """Trials that count toward ``n_trials``: complete, pruned, or failed by their own error (an
    interrupted trial does not count: it is queued again)."""
    from optuna.trial import TrialState

    return sum(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (t.state == TrialState.FAIL and not t.user_attrs.get("interrupted"))
        for t in study.get_trials(deepcopy=False)
    )


def search_lock(root: Path, p: Params):
    """One search per study at a time on this machine: requeueing RUNNING trials is only safe then."""
    from filelock import FileLock, Timeout

    tune = p.tune
    path = Layout.of(root, p).tuning_dir / f"{tune.study_name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))

    @contextlib.contextmanager
    def held():
        try:
            lock.acquire(timeout=0)
        except Timeout as exc:
            raise TuneError(f"another search of study {tune.study_name!r} is running (lock {path})") from exc
        try:
            yield
        finally:
            lock.release()

    return held()


def keep_comparable(study, p: Params, url: str, data_md5: str | None) -> None:
    """Refuse to resume a study whose trials ran under another basis; else record this one, keeping
    what the earlier trials vouch for (their data version, every key ever searched)."""
    basis = study_basis(p, data_md5)
    recorded = study.user_attrs.get(BASIS_ATTR)
    if recorded is not None:
        changes = basis_changes(recorded, basis)
        if changes:
            raise TuneError(
                f"study {p.tune.study_name!r} ({url}) ran its trials under other settings, so their dev scores are not "
                f"comparable with new ones: {'; '.join(changes)}. Search under a new name "
                f"(finsent tune --set tune.study_name={p.tune.study_name}-2) or restore those settings."
            )
        basis["data_version"] = basis["data_version"] or recorded.get("data_version")
        basis["searched"] = sorted(set(basis["searched"]) | set(recorded.get("searched", [])))
    study.set_user_attr(BASIS_ATTR, basis)


def open_search(p: Params, root: Path, data_tags: dict[str, str], derived_md5: str | None = None) -> Search:
    """Create or resume the study, requeue interrupted trials, queue the current settings as trial 0
    of a new study, and open (or reopen) the parent MLflow run. Call under ``search_lock``.

    The data a trial reads is the labelled data version (``data_tags``) and, made from it, the
    augmented training rows and the dev split: ``derived_md5`` (the augmented set's hash, which also
    changes with the dev split it excludes) joins the version in the study's basis."""
    from finsent import tracking
    from finsent.training.model import choose_device

    if p.data.dev_fraction <= 0:
        raise TuneError("the search scores trials on the dev split: set data.dev_fraction above 0")
    url = storage_url(p.tune, root)
    study = load_study(p.tune, url, create=True)
    data_md5 = data_tags.get("data.dvc_md5")
    keep_comparable(study, p, url, f"{data_md5}+{derived_md5}" if data_md5 and derived_md5 else data_md5)
    requeued = requeue_interrupted(study)
    if p.tune.include_current and not study.get_trials(deepcopy=False):
        on_cuda = choose_device(p.tune.devices[0] if p.tune.devices else p.train.device).type == "cuda"
        study.enqueue_trial(current_values(p.train, p.tune.search_space, on_cuda), user_attrs={"baseline": True})
    client = tracking.connect(p.register, root)
    uri = tracking.resolve_tracking_uri(p.register, root)
    experiment_id = tracking.ensure_experiment(client, f"{p.register.experiment}-tuning", tracking.artifact_location(p.register, root, uri))
    parent = study.user_attrs.get(PARENT_RUN_ATTR)
    if parent is None or not _run_exists(client, parent):
        run = client.create_run(
            experiment_id, run_name=f"search-{p.tune.study_name}", tags={"optuna.study": p.tune.study_name, **data_tags}
        )
        parent = run.info.run_id
        study.set_user_attr(PARENT_RUN_ATTR, parent)
        client.log_param(parent, "search_space", json.dumps(p.tune.search_space)[:6000])
    else:
        client.update_run(parent, status="RUNNING")
    return Search(
        study_name=p.tune.study_name,
        storage=url,
        parent_run_id=parent,
        experiment_id=experiment_id,
        trials_left=max(0, p.tune.n_trials - finished_trials(study)),
        requeued=requeued,
    )


def _run_exists(client, run_id: str) -> bool:
    try:
        client.get_run(run_id)
        return True
    except Exception:  # noqa: BLE001 - MLflow raises its own error for an unknown run
        return False


# --- one trial ---------------------------------------------------------------------------------


def trial_data(train_path: Path, dev_path: Path | None, tune: TuneParams, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training rows (capped by ``tune.max_train_rows``) and the dev split: never the test set."""
    if dev_path is None:
        raise TuneError("the search needs a dev split: set data.dev_fraction above 0")
    train_df = read_dataset(train_path)
    # Augmented variants carry their source row: cap by source row so a variant never outlives its original.
    if tune.max_train_rows is not None and "source_row" in train_df and "augmenter" in train_df:
        originals = train_df.loc[train_df["augmenter"] == "original"]
        kept = set(stratified_sample(originals, tune.max_train_rows, seed)["source_row"])
        train_df = train_df.loc[train_df["source_row"].isin(kept)].reset_index(drop=True)
    else:
        train_df = stratified_sample(train_df, tune.max_train_rows, seed)
    return train_df, read_dataset(dev_path)


def run_trial(p: Params, root: Path, search: Search, train_path: Path, dev_path: str | Path | None, log=print) -> TrialResult:
    """Ask the study for values, train with them, report dev scores (pruning there), tell the result.
    Logs the trial as a nested MLflow run under the search's parent run."""
    import optuna
    from mlflow.entities import Metric, Param

    from finsent import tracking
    from finsent.training.train import fit_frames

    study = load_study(p.tune, search.storage)
    with ask_lock(search.storage):
        trial = study.ask(distributions(p.tune.search_space))
    device = trial_device(p.tune, trial.number)
    train_p = trial_train_params(p.train, p.tune, trial.params, device)
    client = tracking.connect(p.register, root)
    run = client.create_run(
        search.experiment_id,
        run_name=f"trial-{trial.number}",
        tags={"mlflow.parentRunId": search.parent_run_id, "optuna.study": search.study_name, "optuna.trial": str(trial.number)},
    )
    run_id = run.info.run_id
    client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in {**trial.params, "device": device or train_p.device}.items()])
    started = time.perf_counter()

    def on_evaluate(step: int, scores: dict) -> None:
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(f"dev_{k}", float(v), now, step) for k, v in scores.items()])
        trial.report(scores["macro_f1"], step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"dev macro-F1 {scores['macro_f1']:.4f} at step {step} trails the median")

    try:
        train_df, dev_df = trial_data(Path(train_path), Path(dev_path) if dev_path else None, p.tune, p.data.seed)
        _, model, stats = fit_frames(train_p, train_df, dev_df, log=lambda _: None, on_evaluate=on_evaluate)
        value = float(stats["selected"]["dev_macro_f1"])
        if not math.isfinite(value):
            raise TuneError(f"trial {trial.number}: dev macro-F1 is {value}")
        study.tell(trial, value)
        client.log_batch(run_id, metrics=[Metric("best_dev_macro_f1", value, int(time.time() * 1000), 0)])
        client.set_terminated(run_id, "FINISHED")
        state, error = "COMPLETE", None
        log(f"trial {trial.number}: dev macro-F1 {value:.4f} with {trial.params}")
    except optuna.TrialPruned as pruned:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        client.set_terminated(run_id, "KILLED")
        state, value, error = "PRUNED", None, str(pruned)
        log(f"trial {trial.number}: pruned ({pruned})")
    except Exception as exc:  # noqa: BLE001 - one bad trial is recorded; the search goes on
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        client.set_tag(run_id, "error", f"{type(exc).__name__}: {exc}"[:5000])
        client.set_terminated(run_id, "FAILED")
        state, value, error = "FAIL", None, f"{type(exc).__name__}: {exc}"
        log(f"trial {trial.number}: failed: {error}")
    return TrialResult(trial.number, state, value, dict(trial.params), run_id, time.perf_counter() - started, error)


# --- the outcome -------------------------------------------------------------------------------


def study_trials(p: Params, search: Search) -> list[TrialRecord]:
    """Every trial of the study, by number: what the tuning flow shows in Prefect's UI."""
    study = load_study(p.tune, search.storage)
    records = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_start and t.datetime_complete else None
        records.append(
            TrialRecord(
                number=t.number,
                state=t.state.name,
                value=float(t.value) if t.value is not None else None,
                params=dict(t.params),
                baseline=bool(t.user_attrs.get("baseline")),
                interrupted=bool(t.user_attrs.get("interrupted")),
                seconds=seconds,
            )
        )
    return records


def write_best(p: Params, root: Path, params_path: Path, best: dict[str, Any], on_cuda: bool) -> tuple[Path, dict[str, Any]]:
    """Write the best values into ``tune.write_params_to``, or into ``params_path`` when that is None
    (a copy of ``params_path`` if the target does not exist yet): into ``train.on_cuda`` for keys it overrides when the search ran on a GPU, else into
    ``train``. Atomic, comments kept; the result must load as valid params."""
    from finsent.config import load_params
    from finsent.params_file import set_values

    target = Path(root) / p.tune.write_params_to if p.tune.write_params_to else Path(params_path)
    source = target if target.is_file() else Path(params_path)
    paths: dict[tuple[str, ...], Any] = {
        (("train", "on_cuda", key) if on_cuda and key in p.train.on_cuda else ("train", key)): value for key, value in best.items()
    }
    text = set_values(source.read_text(encoding="utf-8"), paths)
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
        load_params(tmp)  # a ConfigError leaves the target as it was
    return target, {".".join(path): value for path, value in paths.items()}


def finish_search(p: Params, root: Path, search: Search, params_path: Path) -> SearchSummary:
    """Pick the best finished trial, write its values back, close the parent run."""
    from optuna.trial import TrialState

    from finsent import tracking
    from finsent.training.model import choose_device

    study = load_study(p.tune, search.storage)
    trials = study.get_trials(deepcopy=False)
    counts = {state.name: sum(t.state == state for t in trials) for state in TrialState}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    client = tracking.connect(p.register, root)
    if not complete:
        client.set_terminated(search.parent_run_id, "FAILED")
        raise TuneError(f"study {search.study_name!r} has no completed trial ({counts}); see the trial runs in MLflow")
    best = max(complete, key=lambda t: (t.value, -t.number))
    baseline = next((t.value for t in complete if t.user_attrs.get("baseline")), None)
    on_cuda = choose_device(p.tune.devices[0] if p.tune.devices else p.train.device).type == "cuda"
    target, written = write_best(p, root, params_path, best.params, on_cuda)
    summary = SearchSummary(
        study_name=search.study_name,
        best_trial=best.number,
        best_dev_macro_f1=float(best.value),
        best_params=dict(best.params),
        baseline_dev_macro_f1=baseline,
        trials={k: v for k, v in counts.items() if v},
        params_file=str(target),
        written=written,
        parent_run_id=search.parent_run_id,
    )
    client.log_metric(search.parent_run_id, "best_dev_macro_f1", float(best.value), step=len(trials))
    client.set_tag(search.parent_run_id, "best_trial", str(best.number))
    client.log_text(search.parent_run_id, json.dumps(dataclasses.asdict(summary), indent=2, default=str), "search_summary.json")
    client.log_artifact(search.parent_run_id, str(target))
    client.set_terminated(search.parent_run_id, "FINISHED")
    return summary
