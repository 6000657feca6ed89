"""The ``finsent`` command: a thin layer over the library's stage functions and the Prefect flows.

Every command returns a non-zero exit code with one clear line on stderr when its input is bad.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, TextIO

from finsent.env import apply_quiet_offline
from finsent.errors import FinsentError


def load(args: argparse.Namespace):
    from finsent.config import load_params, parse_overrides, replace

    root = Path(args.root).resolve()
    return root, replace(load_params(root / args.params), **parse_overrides(args.set or []))


def overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    from finsent.config import parse_overrides

    return parse_overrides(args.set or [])


# Standard output holds only the JSON result, so that scripts can parse it: while a command runs,
# everything else that prints (progress, library messages) goes to standard error.
RESULTS: ContextVar[TextIO | None] = ContextVar("finsent_results", default=None)


def emit(value: Any) -> None:
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    print(json.dumps(value, indent=2, default=str), file=RESULTS.get() or sys.stdout)


# --- training -------------------------------------------------------------------------------------


@contextlib.contextmanager
def flow_log(root: Path, params: Any, command: str) -> Iterator[None]:
    """Around a flow command: temporary Prefect servers left by a killed run are stopped, and this
    process marks those it starts; Prefect's console without tracebacks (the error is said once, as
    the last line), and everything in a log file."""
    from finsent.paths import Layout
    from flows.ephemeral import mark_owner, reap_orphaned_servers
    from flows.logs import console_without_tracebacks

    reaped = reap_orphaned_servers()  # left by a finsent that was killed
    if reaped:
        print(f"finsent: stopped {len(reaped)} temporary Prefect server(s) left by a killed run: pids {reaped}", file=sys.stderr)
    mark_owner()
    with console_without_tracebacks(Layout.of(root, params).new_log(command)) as log:
        print(f"finsent: the full log, tracebacks included: {log}", file=sys.stderr)
        yield


def cmd_train(args: argparse.Namespace) -> None:
    """Run the Prefect training flow (the same one `make run` and the deployments run)."""
    from flows.training import training_flow

    root, params = load(args)  # fail on bad params before Prefect starts
    with flow_log(root, params, "train"):
        emit(training_flow(params_path=args.params, root=args.root, overrides=overrides(args)))


def cmd_tune(args: argparse.Namespace) -> None:
    """Run the Prefect tuning flow: an Optuna search on the dev split; the best values go into a params file."""
    from finsent.config import load_params, replace

    sections = overrides(args)
    if args.trials is not None:
        sections.setdefault("tune", {})["n_trials"] = args.trials
    if args.parallel is not None:
        sections.setdefault("tune", {})["parallel_trials"] = args.parallel
    params = replace(load_params(Path(args.root).resolve() / args.params), **sections)  # bad params fail before Prefect is imported
    from flows.tuning import tuning_flow

    with flow_log(Path(args.root).resolve(), params, "tune"):
        emit(tuning_flow(params_path=args.params, root=args.root, overrides=sections))


def cmd_stage(args: argparse.Namespace) -> None:
    """One stage in the run folder ``artifacts/pipeline``, laid out like a flow run (``finsent.paths``):
    what dvc.yaml runs. Each stage imports only its own module: the data stages start in a second
    instead of loading torch and MLflow."""
    from finsent.paths import Layout

    root, p = load(args)
    run = Layout.of(root, p).pipeline
    if args.stage == "validate":
        from finsent.data import validate, versioning

        versioning.ensure_data(root, p.data)
        emit(validate.run(p, root, run.validation))
    elif args.stage == "prepare":
        from finsent.data import prepare
        from finsent.monitoring.store import news_for_training

        emit(prepare.run(p.data, root, run.prepared.dir, news_texts=news_for_training(p.train, p.monitor, root)))
    elif args.stage == "augment":
        from finsent import augment

        heldout = [run.prepared.dev_if_any(), run.prepared.eval]
        emit(augment.run(p.augment, run.prepared.train, heldout, run.augmented_train).to_dict())
    elif args.stage == "train":
        from finsent.training import train

        emit(
            train.run(
                p.train,
                run.augmented_train,
                run.train_dir,
                dev_path=run.prepared.dev_if_any(),
                unlabelled_path=run.prepared.unlabelled_if_any(),
            )
        )
    elif args.stage == "evaluate":
        from finsent.evaluation import evaluate

        emit(evaluate.run(p.evaluate, run.model_dir, run.prepared.eval, run.eval_dir, p.train))
    elif args.stage == "register":
        from finsent import files
        from finsent.data import versioning
        from finsent.registry import register
        from finsent.tracking import RegistryError

        if not run.validation.is_file():
            raise RegistryError(f"{run.validation}: file not found; run `finsent stage validate` first")
        validation = json.loads(run.validation.read_text())
        summary = register.run(p, root, run.train_dir, run.eval_dir, run.prepared.eval, versioning.current_version(root), validation)
        files.write_json(run.registration, asdict(summary))
        emit(summary)


def texts_to_score(args: argparse.Namespace) -> list[str]:
    """The texts on the command line, else one per line on standard input; none, or an empty one,
    is an error before any model loads."""
    from finsent.data.frames import DataError
    from finsent.vocabulary import visible

    texts = list(args.text)
    if not texts and not sys.stdin.isatty():
        try:
            texts = [line.rstrip("\n") for line in sys.stdin if visible(line)]
        except OSError:  # no readable standard input
            texts = []
        except UnicodeDecodeError as exc:
            raise DataError(f"standard input is not UTF-8 text (byte {exc.start}); nothing scored") from exc
    if not texts:
        raise DataError("no text to score: give texts as arguments, or one per line on standard input")
    empty = [str(i + 1) for i, text in enumerate(texts) if not visible(text)]
    if empty:
        raise DataError(f"text {', '.join(empty)} of {len(texts)} is empty (or only spaces and invisible characters): nothing scored")
    return texts


def cmd_predict(args: argparse.Namespace) -> None:
    import pandas as pd

    from finsent import tracking
    from finsent.registry import versions
    from finsent.registry.versions import CHAMPION

    root, p = load(args)
    texts = texts_to_score(args)
    client = tracking.connect(p.register, root)
    alias = args.alias or CHAMPION
    if versions.alias_version(client, p.register.model_name, alias) is None:
        raise tracking.RegistryError(f"no model has the alias {alias!r} in {p.register.model_name!r}: train one first (make run)")
    model = versions.load_pyfunc(f"models:/{p.register.model_name}@{alias}")
    result = model.predict(pd.DataFrame({"text": texts}))
    result.insert(0, "text", texts)
    emit(result.to_dict(orient="records"))


def cmd_explain(args: argparse.Namespace) -> None:
    """Why the champion gives a text its class: each word's attribution (JSON), and an HTML view."""
    from finsent.explain.attributions import check_text
    from finsent.explain.run import html_target, run
    from finsent.monitoring.champion import load_champion
    from finsent.registry.versions import CHAMPION

    root, p = load(args)
    check_text(args.text)  # before any model loads
    html = html_target(args.html) if args.html else None
    champion = load_champion(p, root, alias=args.alias or CHAMPION)
    emit(run(p.explain, champion.scorer, args.text, model_version=champion.version, top_k=args.top_k, html_path=html))


# --- data ---------------------------------------------------------------------------------------


def cmd_data_add(args: argparse.Namespace) -> None:
    from finsent.data import intake

    root, p = load(args)
    emit(intake.add(p, root, Path(args.file), args.name, git_commit=not args.no_git_commit))


def cmd_data_status(args: argparse.Namespace) -> None:
    from finsent.data import versioning

    root, p = load(args)
    interrupted = versioning.interrupted_change(root)  # finished by the next command that changes the data
    if not interrupted:
        emit({"version": versioning.current_version(root).to_dict(), "in_sync": versioning.is_in_sync(root)})
        return
    try:  # a killed change may have left data.dvc cut short: the journal is what matters then
        status = {"version": versioning.current_version(root).to_dict(), "in_sync": versioning.is_in_sync(root)}
    except versioning.VersioningError as exc:
        status = {"version": None, "in_sync": False, "problem": str(exc)}
    emit({**status, "interrupted_change": interrupted})


def cmd_data_checkout(args: argparse.Namespace) -> None:
    from finsent import tracking
    from finsent.data import versioning
    from finsent.registry import versions

    root, p = load(args)
    md5 = args.version
    if md5.isdigit():  # a model version: restore the data it was trained on
        client = tracking.connect(p.register, root)
        tags = versions.get_version(client, p.register.model_name, md5).tags
        if "data.dvc_md5" not in tags:
            raise tracking.RegistryError(f"model version {md5} records no data version")
        md5 = tags["data.dvc_md5"]
    # Progress to stderr: stdout is the JSON result.
    emit(versioning.checkout_version(root, p.data, md5, log=lambda message: print(message, file=sys.stderr)).to_dict())


def cmd_data_init(args: argparse.Namespace) -> None:
    from finsent.data import versioning

    root, p = load(args)
    emit(versioning.ensure_data(root, p.data).to_dict())


def cmd_label_export(args: argparse.Namespace) -> None:
    """Choose stored news to label (label.strategy) and write Label Studio's files and a plain CSV."""
    from finsent.labelling.export import export

    root, p = load(args)
    emit(export(p, root, args.n, args.strategy, Path(args.out)))  # progress goes to stderr (main)


def cmd_label_import(args: argparse.Namespace) -> None:
    """Labels from a Label Studio JSON export (or a filled-in to_label.csv) into a versioned data batch."""
    from finsent.labelling.imports import import_labels

    root, p = load(args)
    emit(import_labels(p, root, Path(args.file), args.name, git_commit=not args.no_git_commit))  # the summary goes to stderr (main)


# --- registry -----------------------------------------------------------------------------------


def cmd_registry(args: argparse.Namespace) -> None:
    from finsent.registry import ops as registry_ops

    root, p = load(args)
    if args.action == "history":
        emit(registry_ops.history(p, root, limit=args.limit))
    elif args.action == "rollback":
        emit(registry_ops.rollback(p, root))
    elif args.action == "lineage":
        emit(registry_ops.lineage(p, root, args.version))
    elif args.action == "promote":
        emit(registry_ops.promote(p, root, args.version, reason=args.reason))
    elif args.action == "show":
        emit(registry_ops.show(p, root))


# --- monitoring ---------------------------------------------------------------------------------


def input_file(path: str) -> Path:
    """A batch file named on the command line: relative to the current folder, checked before any model loads."""
    from finsent.data.frames import DataError

    file = Path(path).resolve()
    if not file.is_file():
        raise DataError(f"{path}: file not found")
    return file


def cmd_score(args: argparse.Namespace) -> None:
    """Score a news batch with the champion into the predictions store (no Prefect: one transaction)."""
    from finsent.monitoring import batch
    from finsent.monitoring.champion import load_champion
    from finsent.monitoring.store import open_store
    from finsent.registry.versions import CHAMPION

    root, p = load(args)
    file = input_file(args.file)
    champion = load_champion(p, root, alias=args.alias or CHAMPION)
    engine = open_store(p.monitor, root)
    emit(batch.run(p.monitor, champion.scorer, file, engine, model_name=champion.name, model_version=champion.version))


def cmd_monitor_index(args: argparse.Namespace) -> None:
    """Per-ticker, per-day counts and net sentiment from the store, alerts, and a plot."""
    from finsent.monitoring import sentiment_index
    from finsent.monitoring.store import open_store
    from finsent.paths import Layout

    root, p = load(args)
    out = Path(args.out).resolve() if args.out else Layout.of(root, p).index_dir
    summary = sentiment_index.run(p.monitor, open_store(p.monitor, root), out, start=args.start, end=args.end, plot_format=args.format)
    emit({**json.loads(Path(summary.json_path).read_text()), "json_path": summary.json_path, "plot_path": summary.plot_path})


def cmd_monitor_drift(args: argparse.Namespace) -> None:
    """Drift of a batch file against the champion's training data; the verdict is printed and logged to
    MLflow. The batch is scored but not stored, and the retrain history is not touched."""
    from finsent import tracking
    from finsent.monitoring import run
    from finsent.monitoring.champion import load_champion
    from finsent.paths import Layout

    root, p = load(args)
    file = input_file(args.file)
    client = tracking.connect(p.register, root)
    champion = load_champion(p, root, client=client)
    out = Path(args.out).resolve() if args.out else Layout.of(root, p).new_monitoring_dir("drift")
    result = run.drift_check_file(p, root, client, champion, file, out)
    emit(result)
    if args.fail_on_drift and result["verdict"]["drift"]:
        raise SystemExit(1)


def cmd_monitor_run(args: argparse.Namespace) -> None:
    """The Prefect monitoring flow on one file (or the inbox): score, drift, index, retrain policy."""
    from flows.monitoring import monitoring_flow

    root, params = load(args)  # fail on bad params before Prefect starts
    path = str(input_file(args.file)) if args.file else None
    with flow_log(root, params, "monitor"):
        summary = monitoring_flow(
            path=path,
            params_path=args.params,
            root=str(root),
            overrides=overrides(args),
            retrain=not args.no_retrain,
            git_commit=not args.no_git_commit,
        )
        emit(summary.to_dict())


def cmd_alerts(args: argparse.Namespace) -> None:
    """The alert log (newest first, with each webhook delivery), or one delivery round of the pending ones."""
    from finsent.monitoring import alerts, webhooks
    from finsent.monitoring.store import open_store

    root, p = load(args)
    engine = open_store(p.monitor, root)
    if args.alerts_command == "deliver":
        emit(webhooks.deliver_pending(engine, p.alerts))
    else:
        emit(alerts.read_alerts(engine, kind=args.kind, ticker=args.ticker, since=args.since, limit=args.limit))


def cmd_serve(args: argparse.Namespace) -> None:
    """Start a Prefect server and serve the nightly-retrain and hourly-monitor deployments (blocks)."""
    from flows.serve import serve

    root, _ = load(args)
    serve(args.params, root, host=args.host, port=args.port, start=not args.no_server)


def cmd_api(args: argparse.Namespace) -> None:
    """The live service: scoring, news ingest, index and alerts over HTTP, following the champion (blocks)."""
    from finsent.service.server import serve

    root, p = load(args)
    serve(p, root, host=args.host, port=args.port, allow_no_token=args.allow_no_token)


def cmd_dashboard(args: argparse.Namespace) -> None:
    """The analysts' page over the predictions store: index, volume, alerts, headlines (blocks)."""
    from finsent.dashboard.server import serve

    def ready(info: dict[str, Any]) -> None:  # the URL on stdout at once, for scripts (port 0: a free one)
        emit(info)
        (RESULTS.get() or sys.stdout).flush()

    root, p = load(args)
    serve(p, root, host=args.host, port=args.port, path_prefix=args.path_prefix, ready=ready, explain=args.explain)


def cmd_deploy(args: argparse.Namespace) -> None:
    """Register the two deployments on a work pool of the server that PREFECT_API_URL names."""
    from flows.serve import deploy_to_pool

    root, params = load(args)
    emit(deploy_to_pool(params, args.params, root, pool=args.pool))


def cmd_ui(args: argparse.Namespace) -> None:
    """Evidently's UI on the model-health workspace (blocks); the URLs, with the MLflow and Prefect UIs', as JSON once it answers."""
    from finsent.monitoring import workspace

    root, p = load(args)

    def ready(info: dict) -> None:
        emit(info)
        (RESULTS.get() or sys.stdout).flush()  # the JSON is read while the service runs

    code = workspace.serve_ui(p, root, host=args.host, port=args.port, on_ready=ready)
    if code:
        raise SystemExit(code)


def cmd_monitor_backfill_ui(args: argparse.Namespace) -> None:
    """Add the monitoring windows on disk that the Evidently workspace lacks (each window once)."""
    from finsent.monitoring import workspace

    root, p = load(args)
    summary = workspace.backfill(p, root)
    emit({**asdict(summary), "snapshots_added": summary.snapshots_added})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finsent", description="Financial-news sentiment: train, register, monitor.")
    parser.add_argument("--root", default=".", help="project folder (default: .)")
    parser.add_argument("--params", default="params.yaml", help="parameters file, relative to --root")
    parser.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a parameter (repeatable)")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("train", help="run the training flow: validate, version, train, evaluate, register").set_defaults(func=cmd_train)
    tune_cmd = sub.add_parser("tune", help="run the tuning flow: Optuna trials on the dev split, best values written to params")
    tune_cmd.add_argument("--trials", type=int, default=None, help="finished trials wanted (default tune.n_trials)")
    tune_cmd.add_argument("--parallel", type=int, default=None, help="trials at once (default tune.parallel_trials)")
    tune_cmd.set_defaults(func=cmd_tune)
    stage = sub.add_parser("stage", help="run one pipeline stage (used by dvc.yaml)")
    stage.add_argument("stage", choices=["validate", "prepare", "augment", "train", "evaluate", "register"])
    stage.set_defaults(func=cmd_stage)
    predict = sub.add_parser("predict", help="score texts with the champion (or stdin, one per line)")
    predict.add_argument("text", nargs="*")
    predict.add_argument("--alias", default=None, help="registry alias (default champion)")
    predict.set_defaults(func=cmd_predict)
    explain_cmd = sub.add_parser("explain", help="why the champion gives a text its class: per-word attributions (JSON)")
    explain_cmd.add_argument("text")
    explain_cmd.add_argument("--html", metavar="FILE", help="also write the text with its words highlighted as an HTML page")
    explain_cmd.add_argument("--top-k", type=int, default=None, metavar="K", help="top words listed (default explain.top_k)")
    explain_cmd.add_argument("--alias", default=None, help="registry alias (default champion)")
    explain_cmd.set_defaults(func=cmd_explain)

    data = sub.add_parser("data", help="versioned datasets").add_subparsers(dest="data_command", required=True)
    add = data.add_parser("add", help="validate a labelled batch (CSV/JSONL: text,label), then version it")
    add.add_argument("file")
    add.add_argument("--name", help="batch name (default: file name)")
    add.add_argument("--no-git-commit", action="store_true", help="do not commit data.dvc to git")
    add.set_defaults(func=cmd_data_add)
    data.add_parser("status", help="current data version").set_defaults(func=cmd_data_status)
    data.add_parser("init", help="restore or bootstrap data/ (fresh clone)").set_defaults(func=cmd_data_init)
    checkout = data.add_parser("checkout", help="restore data/ to a DVC hash or to a model version's data")
    checkout.add_argument("version", help="DVC folder hash (from lineage) or a model version number")
    checkout.set_defaults(func=cmd_data_checkout)

    from finsent.config import LABEL_STRATEGIES

    label = sub.add_parser("label", help="choose stored news to label (Label Studio), and take the labels back").add_subparsers(
        dest="label_command", required=True
    )
    label_export = label.add_parser("export", help="write tasks.json + label_config.xml (Label Studio) and to_label.csv")
    label_export.add_argument("--n", type=int, default=None, help="texts to export (default label.n)")
    label_export.add_argument("--strategy", choices=LABEL_STRATEGIES, default=None, help="how to choose them (default label.strategy)")
    label_export.add_argument("--out", required=True, help="a new folder for the files")
    label_export.set_defaults(func=cmd_label_export)
    label_import = label.add_parser("import", help="a Label Studio JSON export (or a filled-in to_label.csv) -> a versioned data batch")
    label_import.add_argument("file")
    label_import.add_argument("--name", help="batch name (default: file name)")
    label_import.add_argument("--no-git-commit", action="store_true", help="do not commit data.dvc to git")
    label_import.set_defaults(func=cmd_label_import)

    reg = sub.add_parser("registry", help="model registry").add_subparsers(dest="action", required=True)
    hist = reg.add_parser("history", help="every promotion decision, newest first")
    hist.add_argument("--limit", type=int, default=50)
    reg.add_parser("rollback", help="point champion back at the previous champion")
    reg.add_parser("show", help="versions and aliases")
    lineage = reg.add_parser("lineage", help="run, params, data version and metrics of a version")
    lineage.add_argument("version")
    promote = reg.add_parser("promote", help="make a version champion by hand (recorded in the audit log)")
    promote.add_argument("version")
    promote.add_argument("--reason", required=True)
    for name in ("history", "rollback", "show", "lineage", "promote"):
        reg.choices[name].set_defaults(func=cmd_registry)
    score = sub.add_parser(
        "score", help="score a news batch (CSV/JSONL: text, published_at[, ticker, source, label]) into the predictions store"
    )
    score.add_argument("file")
    score.add_argument("--alias", default=None, help="registry alias (default champion)")
    score.set_defaults(func=cmd_score)
    mon = sub.add_parser("monitor", help="sentiment index, drift, and the monitoring flow").add_subparsers(
        dest="monitor_command", required=True
    )
    index = mon.add_parser("index", help="per-ticker, per-day counts and net sentiment from the store, with alerts and a plot")
    index.add_argument("--start", help="first published day or time, ISO 8601 (UTC)")
    index.add_argument("--end", help="end (exclusive), ISO 8601 (UTC)")
    index.add_argument("--format", choices=["png", "html"], default=None, help="plot format (default monitor.plot_format)")
    index.add_argument("--out", help="output folder (default artifacts/monitoring/index)")
    index.set_defaults(func=cmd_monitor_index)
    drift_cmd = mon.add_parser("drift", help="drift of a batch file against the champion's training data (logged to MLflow)")
    drift_cmd.add_argument("file")
    drift_cmd.add_argument("--out", help="report folder (default artifacts/monitoring/drift/<time>)")
    drift_cmd.add_argument("--fail-on-drift", action="store_true", help="exit with code 1 when drift is found")
    drift_cmd.set_defaults(func=cmd_monitor_drift)
    mrun = mon.add_parser("run", help="the monitoring flow: score, drift, sentiment alerts, retrain policy (and retraining)")
    mrun.add_argument("file", nargs="?", help="batch file (default: every new file in schedule.monitor_inbox)")
    mrun.add_argument("--no-retrain", action="store_true", help="report the retrain decision without acting on it")
    mrun.add_argument("--no-git-commit", action="store_true", help="do not commit data.dvc when labels are added")
    mrun.set_defaults(func=cmd_monitor_run)
    mon.add_parser(
        "backfill-ui", help="add the monitoring windows on disk to the Evidently workspace of `finsent ui` (each window once)"
    ).set_defaults(func=cmd_monitor_backfill_ui)
    alerts_cmd = sub.add_parser("alerts", help="sentiment, drift and promotion alerts, and their webhook deliveries").add_subparsers(
        dest="alerts_command", required=True
    )
    alerts_list = alerts_cmd.add_parser("list", help="recorded alerts, newest first, with each webhook's delivery status")
    alerts_list.add_argument("--kind", help="sentiment | drift | promotion (default: all)")
    alerts_list.add_argument("--ticker", help="only the sentiment alerts of this ticker")
    alerts_list.add_argument("--since", help="recorded at or after this ISO 8601 time (UTC)")
    alerts_list.add_argument("--limit", type=int, default=100)
    alerts_list.set_defaults(func=cmd_alerts)
    alerts_cmd.add_parser("deliver", help="post the pending deliveries that are due now (retried webhooks)").set_defaults(func=cmd_alerts)
    serve_cmd = sub.add_parser("serve", help="start a Prefect server and serve the nightly-retrain and hourly-monitor deployments")
    serve_cmd.add_argument("--host", default=None, help="server host (default schedule.server_host)")
    serve_cmd.add_argument("--port", type=int, default=None, help="server port (default schedule.server_port)")
    serve_cmd.add_argument("--no-server", action="store_true", help="use the running server named by PREFECT_API_URL")
    serve_cmd.set_defaults(func=cmd_serve)
    api_cmd = sub.add_parser(
        "api", help="the live HTTP service: /v1/predict, /v1/news, /v1/index, /v1/alerts, /metrics (follows the champion)"
    )
    api_cmd.add_argument("--host", default=None, help="address to bind (default service.host, 127.0.0.1)")
    api_cmd.add_argument("--port", type=int, default=None, help="port (default service.port)")
    api_cmd.add_argument(
        "--allow-no-token", action="store_true", help="bind beyond loopback without a write token (behind an authenticating gateway)"
    )
    api_cmd.set_defaults(func=cmd_api)
    dash_cmd = sub.add_parser("dashboard", help="the analysts' page: sentiment index, volume, alerts and the headlines behind them")
    dash_cmd.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    dash_cmd.add_argument("--port", type=int, default=None, help="port (default 8050; 0 picks a free one)")
    dash_cmd.add_argument("--path-prefix", default="/", help="the path the page is reached under behind a proxy (default /)")
    dash_cmd.add_argument(
        "--explain",
        action="store_true",
        help="load the champion to show why it gave a clicked headline its class (one model pass per click)",
    )
    dash_cmd.set_defaults(func=cmd_dashboard)
    deploy_cmd = sub.add_parser(
        "deploy", help="register both deployments on a work pool of the server at PREFECT_API_URL (workers run them)"
    )
    deploy_cmd.add_argument("--pool", default=None, help="work pool (default schedule.work_pool; created as a process pool if missing)")
    deploy_cmd.set_defaults(func=cmd_deploy)
    ui_cmd = sub.add_parser("ui", help="Evidently's UI: model health over monitoring windows (and where the MLflow and Prefect UIs are)")
    ui_cmd.add_argument("--host", default=None, help="address to bind (default workspace.host, 127.0.0.1)")
    ui_cmd.add_argument("--port", type=int, default=None, help="port (default workspace.port)")
    ui_cmd.set_defaults(func=cmd_ui)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    apply_quiet_offline()
    args = build_parser().parse_args(argv)
    token = RESULTS.set(sys.stdout)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            args.func(args)
    except FinsentError as exc:  # bad input or a service that is down: one line, no traceback
        print(f"finsent: error: {exc}", file=sys.stderr)
        return 2
    finally:
        RESULTS.reset(token)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
