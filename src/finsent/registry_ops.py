"""Operator commands on the registry: history, rollback, manual promotion, lineage.

Each changes aliases only under the promotion lock, checks that the target version exists and still
has its model files, and appends its decision to the audit log.
"""

from __future__ import annotations

import json
from pathlib import Path

from finsent import registry
from finsent.config import Params
from finsent.register import audit_experiment, record_decision
from finsent.registry import CHAMPION, RegistryError


def history(p: Params, root: Path, limit: int = 50) -> list[dict]:
    """Every recorded decision, newest first."""
    client = registry.connect(p.register, root)
    experiment = client.get_experiment_by_name(audit_experiment(p))
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=limit)
    out = []
    for run in runs:
        tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
        for key in ("decision", "reasons"):
            if key in tags:
                try:
                    tags[key] = json.loads(tags[key])
                except json.JSONDecodeError:
                    pass
        out.append({"time_ms": run.info.start_time, **tags})
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
    """Point champion at the champion before the current one."""
    client = registry.connect(p.register, root)
    name = p.register.model_name
    uri = registry.resolve_tracking_uri(p.register, root)
    with registry.promotion_lock(uri, root):
        current = registry.alias_version(client, name, CHAMPION)
        if current is None:
            raise RegistryError(f"{name!r} has no champion to roll back")
        stack = champion_stack(list(reversed(history(p, root, limit=100_000))))
        if len(stack) < 2 or stack[-1] != current:
            raise RegistryError(f"{name!r} champion version {current} has no previous champion to roll back to")
        target = stack[-2]
        registry.get_version(client, name, target)
        registry.check_artifacts(client, name, target)
        client.set_registered_model_alias(name, CHAMPION, target)
        client.set_model_version_tag(name, current, "rolled_back", "true")
        record_decision(client, p, root, "rollback", target, {"champion_before": current, "champion_after": target, "promoted": "true"})
    return {"champion_before": current, "champion_after": target}


def promote(p: Params, root: Path, version: str, reason: str) -> dict:
    """Make ``version`` champion by an operator's decision (bypasses the gate, recorded as such)."""
    client = registry.connect(p.register, root)
    name = p.register.model_name
    uri = registry.resolve_tracking_uri(p.register, root)
    with registry.promotion_lock(uri, root):
        registry.get_version(client, name, version)
        registry.check_artifacts(client, name, version)
        before = registry.alias_version(client, name, CHAMPION)
        client.set_registered_model_alias(name, CHAMPION, str(version))
        record_decision(
            client, p, root, "manual-promote", version,
            {"champion_before": before or "", "champion_after": str(version), "promoted": "true", "reasons": [reason]},
        )
    return {"champion_before": before, "champion_after": str(version)}


def lineage(p: Params, root: Path, version: str) -> dict:
    """Where a version came from: run, params, data version, validation result, metrics."""
    client = registry.connect(p.register, root)
    name = p.register.model_name
    mv = registry.get_version(client, name, version)
    run = client.get_run(mv.run_id)
    tags = run.data.tags
    return {
        "model": name,
        "version": mv.version,
        "aliases": list(client.get_model_version(name, mv.version).aliases),
        "run_id": mv.run_id,
        "experiment_id": run.info.experiment_id,
        "data": {k.removeprefix("data."): v for k, v in tags.items() if k.startswith("data.")},
        "code": {k.removeprefix("git."): v for k, v in tags.items() if k.startswith("git.")},
        "libraries": {k.removeprefix("lib."): v for k, v in tags.items() if k.startswith("lib.")},
        "validation": json.loads(tags.get("validation.summary", "{}")) if tags.get("validation.summary", "").startswith("{") else tags.get("validation.summary"),
        "evaluation": {"sha256": tags.get("eval.sha256"), "rows": tags.get("eval.rows")},
        "gate": {k.removeprefix("gate."): v for k, v in mv.tags.items() if k.startswith("gate.")},
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "restore_data": f"finsent data checkout {tags.get('data.dvc_md5', '?')}",
    }


def show(p: Params, root: Path) -> dict:
    client = registry.connect(p.register, root)
    name = p.register.model_name
    versions = client.search_model_versions(f"name='{name}'")
    rows = []
    for mv in sorted(versions, key=lambda v: int(v.version)):
        full = client.get_model_version(name, mv.version)  # SQLite leaves aliases empty in search results
        rows.append({"version": mv.version, "aliases": list(full.aliases), "run_id": mv.run_id, "macro_f1": full.tags.get("gate.macro_f1")})
    return {"model": name, "versions": rows}
