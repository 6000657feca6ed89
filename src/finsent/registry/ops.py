"""Operator commands on the registry: history, rollback, manual promotion, lineage.

Each changes aliases only under the promotion lock, checks that the target version exists and still
has its model files, and appends its decision to the audit log.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from finsent import tracking
from finsent.config import Params
from finsent.registry import versions
from finsent.registry.register import audit_experiment, record_decision, with_retries
from finsent.registry.versions import CHAMPION
from finsent.tracking import RegistryError

JSON_TAGS = ("reasons", "numbers")
PAGE_SIZE = 1000


def _audit_runs(client, p: Params, limit: int | None) -> list:
    """Audit runs, newest decision first, paging through the store (it caps one page)."""
    experiment = client.get_experiment_by_name(audit_experiment(p))
    if experiment is None:
        return []
    runs: list = []
    token = None
    while limit is None or len(runs) < limit:
        page_size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - len(runs))
        page = client.search_runs(
            [experiment.experiment_id],
            order_by=["tags.seq DESC", "attributes.start_time DESC"],
            max_results=page_size,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            break
    return runs


def history(p: Params, root: Path, limit: int | None = 50) -> list[dict]:
    """Recorded decisions, newest first (``limit=None``: all of them)."""
    if limit is not None and limit < 1:
        raise RegistryError(f"history limit must be >= 1, got {limit}")
    return decisions(tracking.connect(p.register, root), p, limit)


def decisions(client, p: Params, limit: int | None) -> list[dict]:
    """The audit log as plain records: its tags, with the JSON ones (reasons, numbers) parsed."""
    out = []
    for run in _audit_runs(client, p, limit):
        tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
        for key in JSON_TAGS:
            if key in tags:
                try:
                    tags[key] = json.loads(tags[key])
                except json.JSONDecodeError:
                    pass
        out.append({"time_ms": run.info.start_time, "audit_run_id": run.info.run_id, **tags})
    return out


def champion_stack(events_oldest_first: list[dict]) -> list[str]:
    """Replay decisions: a promotion pushes its version, a rollback pops the current champion.
    The entry below the top is what a rollback returns to."""
    stack: list[str] = []
    for event in events_oldest_first:
        if event.get("promoted") != "true":
            continue
        if event.get("action") == "rollback":
            if stack:
                stack.pop()
            if not stack or stack[-1] != event.get("champion_after"):
                stack.append(event.get("champion_after", ""))
        elif not stack or stack[-1] != event.get("champion_after"):
            stack.append(event.get("champion_after", ""))
    return stack


def rollback(p: Params, root: Path) -> dict:
    """Point champion at the champion before the current one. The target must exist and still have
    its model files; otherwise nothing changes."""
    client = tracking.connect(p.register, root)
    name = p.register.model_name
    uri = tracking.resolve_tracking_uri(p.register, root)
    with versions.promotion_lock(uri, root, lock_url=p.register.lock_url, name=p.register.model_name):
        current = versions.alias_version(client, name, CHAMPION)
        if current is None:
            raise RegistryError(f"{name!r} has no champion to roll back (empty registry or none promoted yet)")
        stack = champion_stack(list(reversed(decisions(client, p, limit=None))))
        if not stack or stack[-1] != current:
            raise RegistryError(
                f"{name!r} champion version {current} was not set by a recorded decision; "
                "use `finsent registry promote VERSION --reason ...` to choose one"
            )
        if len(stack) < 2:
            raise RegistryError(f"{name!r} champion version {current} has no previous champion to roll back to")
        target = stack[-2]
        versions.check_artifacts(client, name, target)
        with_retries(client.set_registered_model_alias, name, CHAMPION, target)
        with_retries(client.set_model_version_tag, name, current, "rolled_back", "true")
        record_decision(client, p, root, "rollback", target, {"champion_before": current, "champion_after": target, "promoted": "true"})
    return {"model": name, "champion_before": current, "champion_after": target}


def promote(p: Params, root: Path, version: str, reason: str) -> dict:
    """Make ``version`` champion by an operator's decision (bypasses the gate, recorded as such)."""
    if not reason or not reason.strip():
        raise RegistryError("a manual promotion needs a reason for the audit log")
    client = tracking.connect(p.register, root)
    name = p.register.model_name
    uri = tracking.resolve_tracking_uri(p.register, root)
    with versions.promotion_lock(uri, root, lock_url=p.register.lock_url, name=p.register.model_name):
        versions.check_artifacts(client, name, version)  # also: the version exists
        version = str(versions.get_version(client, name, version).version)
        before = versions.alias_version(client, name, CHAMPION)
        with_retries(client.set_registered_model_alias, name, CHAMPION, version)
        record_decision(
            client,
            p,
            root,
            "manual-promote",
            version,
            {"champion_before": before or "", "champion_after": version, "promoted": "true", "reasons": [reason]},
        )
    return {"model": name, "champion_before": before, "champion_after": version}


def _validation(client, run) -> dict | str | None:
    """The validation summary: from its tag, or from the logged file when the tag was clipped."""
    import mlflow

    tag = run.data.tags.get("validation.summary")
    try:
        return json.loads(tag) if tag else None
    except json.JSONDecodeError:
        pass
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="validation.json", dst_path=tmp)
            return json.loads(Path(path).read_text())
    except Exception:  # noqa: BLE001 - show what there is
        return tag


def lineage(p: Params, root: Path, version: str) -> dict:
    """Where a version came from: run, params, data version (DVC hash, git commit), validation
    result, gate decision and metrics."""
    from mlflow.exceptions import MlflowException

    client = tracking.connect(p.register, root)
    name = p.register.model_name
    mv = versions.get_version(client, name, version)
    try:
        run = client.get_run(mv.run_id)
    except MlflowException as exc:
        raise RegistryError(f"{name} version {mv.version}: its training run {mv.run_id!r} cannot be read ({exc})") from exc
    tags = run.data.tags
    return {
        "model": name,
        "version": str(mv.version),
        "aliases": sorted(mv.aliases),
        "run_id": mv.run_id,
        "experiment_id": run.info.experiment_id,
        "data": {k.removeprefix("data."): v for k, v in tags.items() if k.startswith("data.")},
        "code": {k.removeprefix("git."): v for k, v in tags.items() if k.startswith("git.")},
        "libraries": {k.removeprefix("lib."): v for k, v in tags.items() if k.startswith("lib.")},
        "validation": _validation(client, run),
        "evaluation": {"sha256": tags.get("eval.sha256"), "rows": tags.get("eval.rows")},
        "gate": {k.removeprefix("gate."): v for k, v in mv.tags.items() if k.startswith("gate.")},
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "restore_data": f"finsent data checkout {mv.version}  (or the DVC hash {tags.get('data.dvc_md5', '?')})",
    }


def show(p: Params, root: Path) -> dict:
    """Every version with its aliases and gate decision."""
    client = tracking.connect(p.register, root)
    name = p.register.model_name
    versions = client.search_model_versions(f"name='{name}'")
    rows = []
    for mv in sorted(versions, key=lambda v: int(v.version)):
        full = client.get_model_version(name, mv.version)  # SQLite leaves aliases empty in search results
        rows.append(
            {
                "version": str(mv.version),
                "aliases": sorted(full.aliases),
                "run_id": mv.run_id,
                "gate": full.tags.get("gate.decision"),
                "macro_f1": full.tags.get("gate.macro_f1"),
            }
        )
    return {"model": name, "versions": rows}
