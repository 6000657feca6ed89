"""The path catalogue and dvc.yaml agree: the stages write where the catalogue says, and each stage
depends on every module of finsent that its code imports, so `dvc repro` reruns it when any changes."""

from pathlib import Path

import grimp
import pytest
import yaml

from finsent.config import Params
from finsent.paths import Layout, resolve_url, sqlite_path

REPO = Path(__file__).resolve().parents[2]
# What each `finsent stage NAME` runs (finsent.cli.cmd_stage).
STAGE_MODULES = {
    "validate": ["finsent.data.validate", "finsent.data.versioning"],
    "prepare": ["finsent.data.prepare"],
    "augment": ["finsent.augment"],
    "train": ["finsent.training.train"],
    "evaluate": ["finsent.evaluation.evaluate"],
    "register": ["finsent.registry.register", "finsent.data.versioning"],
}
# Plumbing that cannot change a stage's result: errors, atomic writes, paths, time, the environment.
# config.py's values reach DVC as params; the package __init__ files hold docstrings only.
NOT_RESULTS = {"finsent", "finsent.config", "finsent.errors", "finsent.files", "finsent.paths", "finsent.utc", "finsent.env"}


@pytest.fixture(scope="module")
def stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def outs(stage: dict) -> set[str]:
    return {next(iter(o)) if isinstance(o, dict) else o for key in ("outs", "metrics", "plots") for o in stage.get(key, [])}


def test_dvc_stages_write_where_the_catalogue_says(stages):
    run = Layout.of(REPO, Params()).pipeline
    rel = lambda path: str(path.relative_to(REPO))  # noqa: E731
    assert outs(stages["validate"]) == {rel(run.validation)}
    assert outs(stages["prepare"]) == {rel(run.prepared.dir)}
    assert outs(stages["augment"]) == {rel(run.augmented_train)}
    assert outs(stages["train"]) == {rel(run.train_dir)}
    assert {rel(run.eval_dir / n) for n in ("metrics.json", "predictions.csv", "behaviour.json")} <= outs(stages["evaluate"])
    assert outs(stages["register"]) == {rel(run.registration)}
    assert rel(run.model_dir) in stages["evaluate"]["deps"] and rel(run.prepared.eval) in stages["evaluate"]["deps"]


@pytest.mark.parametrize("name", list(STAGE_MODULES))
def test_each_stage_depends_on_all_the_code_it_runs(stages, name):
    graph = grimp.build_graph("finsent")
    imported = set()
    for module in STAGE_MODULES[name]:
        imported |= graph.find_upstream_modules(module) | {module}
    deps = [REPO / d for d in stages[name]["deps"]]
    for module in sorted(imported - NOT_RESULTS):
        path = REPO / "src" / Path(*module.split("."))
        file = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        covered = any(file == dep or dep in file.parents for dep in deps)
        assert covered, f"dvc.yaml stage {name!r} runs {module} but does not list {file.relative_to(REPO)} (or its folder) in deps"


def test_relative_sqlite_urls_are_taken_from_the_project_root(tmp_path):
    assert resolve_url("sqlite:///mlflow.db", tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert resolve_url("sqlite:////abs/x.db", tmp_path) == "sqlite:////abs/x.db"
    assert resolve_url("sqlite:///:memory:", tmp_path) == "sqlite:///:memory:"
    assert resolve_url("postgresql+psycopg2://u@h/db", tmp_path) == "postgresql+psycopg2://u@h/db"
    assert sqlite_path(resolve_url("sqlite:///a/b.db", tmp_path)) == tmp_path.resolve() / "a" / "b.db"
    assert sqlite_path("postgresql://h/db") is None
