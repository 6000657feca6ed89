"""The ``finsent`` command: a thin layer over the library's stage functions and the Prefect flows.

Every command returns a non-zero exit code with one clear line on stderr when its input is bad.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from finsent.env import apply_quiet_offline

PIPELINE_DIR = "pipeline"  # fixed stage outputs under artifacts/, for dvc.yaml


def parse_overrides(pairs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["train.epochs=1", "data.max_train_rows=500"]`` -> ``{"train": {"epochs": 1}, ...}``."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        section, dot, field = key.partition(".")
        if not sep or not dot:
            raise SystemExit(f"finsent: --set expects section.key=value, got {pair!r}")
        out.setdefault(section, {})[field] = yaml.safe_load(value)
    return out


def load(args: argparse.Namespace):
    from finsent.config import load_params, replace

    root = Path(args.root).resolve()
    return root, replace(load_params(root / args.params), **parse_overrides(args.set or []))


def emit(value: Any) -> None:
    if is_dataclass(value):
        value = asdict(value)
    print(json.dumps(value, indent=2, default=str))


# --- training -------------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> None:
    """Run the Prefect training flow (the same one `make run` and the deployments run)."""
    from flows.training import training_flow

    load(args)  # fail on bad params before Prefect starts
    emit(training_flow(params_path=args.params, root=args.root, overrides=parse_overrides(args.set or [])))


def cmd_stage(args: argparse.Namespace) -> None:
    """One stage with fixed paths under artifacts/pipeline: what dvc.yaml runs."""
    from finsent import evaluate, prepare, register, train, validate, versioning

    root, p = load(args)
    out = root / p.artifacts_dir / PIPELINE_DIR
    if args.stage == "validate":
        versioning.ensure_data(root, p.data)
        emit(validate.run(p, root, out / "validation.json"))
    elif args.stage == "prepare":
        emit(prepare.run(p.data, root, out / "data"))
    elif args.stage == "train":
        emit(train.run(p.train, out / "data" / "train.csv", out / "train"))
    elif args.stage == "evaluate":
        emit(evaluate.run(p.evaluate, out / "train" / "model", out / "data" / "eval.csv", out / "eval", p.train))
    elif args.stage == "register":
        validation = json.loads((out / "validation.json").read_text())
        summary = register.run(
            p, root, out / "train", out / "eval", out / "data" / "eval.csv", versioning.current_version(root), validation
        )
        (out / "registration.json").write_text(json.dumps(asdict(summary), indent=2))
        emit(summary)


def cmd_predict(args: argparse.Namespace) -> None:
    import pandas as pd

    from finsent import registry
    from finsent.registry import CHAMPION

    import mlflow

    root, p = load(args)
    client = registry.connect(p.register, root)
    alias = args.alias or CHAMPION
    if registry.alias_version(client, p.register.model_name, alias) is None:
        raise registry.RegistryError(f"no model has the alias {alias!r} in {p.register.model_name!r}: train one first (make run)")
    model = mlflow.pyfunc.load_model(f"models:/{p.register.model_name}@{alias}")
    texts = args.text or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    result = model.predict(pd.DataFrame({"text": texts}))
    result.insert(0, "text", texts)
    emit(result.to_dict(orient="records"))


# --- data ---------------------------------------------------------------------------------------


def cmd_data_add(args: argparse.Namespace) -> None:
    from finsent import validate, versioning
    from finsent.data import read_table

    root, p = load(args)
    versioning.ensure_data(root, p.data)
    path = Path(args.file)
    eval_raw = read_table(root / p.data.data_dir / p.data.eval_file)
    report = validate.validate_file(path, eval_raw, p.validate)
    if not report.success:
        kept = None
        if path.is_file():
            kept = versioning.quarantine(path, root / p.data.quarantine_dir, json.dumps(report.to_dict(), indent=2, default=str))
        raise validate.ValidationError([report], [str(kept)] if kept else None)
    name = args.name or path.stem
    version = versioning.add_batch(root, p.data, path, name, git_commit=not args.no_git_commit)
    emit({"added": name, "rows": report.rows, "data_version": version.to_dict()})


def cmd_data_status(args: argparse.Namespace) -> None:
    from finsent import versioning

    root, p = load(args)
    emit({"version": versioning.current_version(root).to_dict(), "in_sync": versioning.is_in_sync(root)})


def cmd_data_checkout(args: argparse.Namespace) -> None:
    from finsent import registry, versioning

    root, p = load(args)
    md5 = args.version
    if md5.isdigit():  # a model version: restore the data it was trained on
        client = registry.connect(p.register, root)
        tags = registry.get_version(client, p.register.model_name, md5).tags
        if "data.dvc_md5" not in tags:
            raise registry.RegistryError(f"model version {md5} records no data version")
        md5 = tags["data.dvc_md5"]
    emit(versioning.checkout_version(root, p.data, md5).to_dict())


def cmd_data_init(args: argparse.Namespace) -> None:
    from finsent import versioning

    root, p = load(args)
    emit(versioning.ensure_data(root, p.data).to_dict())


# --- registry -----------------------------------------------------------------------------------


def cmd_registry(args: argparse.Namespace) -> None:
    from finsent import registry_ops

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finsent", description="Financial-news sentiment: train, register, monitor.")
    parser.add_argument("--root", default=".", help="project folder (default: .)")
    parser.add_argument("--params", default="params.yaml", help="parameters file, relative to --root")
    parser.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a parameter (repeatable)")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("train", help="run the training flow: validate, version, train, evaluate, register").set_defaults(func=cmd_train)
    stage = sub.add_parser("stage", help="run one pipeline stage (used by dvc.yaml)")
    stage.add_argument("stage", choices=["validate", "prepare", "train", "evaluate", "register"])
    stage.set_defaults(func=cmd_stage)
    predict = sub.add_parser("predict", help="score texts with the champion (or stdin, one per line)")
    predict.add_argument("text", nargs="*")
    predict.add_argument("--alias", default=None, help="registry alias (default champion)")
    predict.set_defaults(func=cmd_predict)

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    apply_quiet_offline()
    args = build_parser().parse_args(argv)
    from finsent.config import ConfigError
    from finsent.data import DataError
    from finsent.model import ModelError
    from finsent.registry import RegistryError
    from finsent.validate import ValidationError
    from finsent.versioning import VersioningError

    try:
        args.func(args)
    except (ConfigError, DataError, ModelError, RegistryError, ValidationError, VersioningError) as exc:
        print(f"finsent: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
