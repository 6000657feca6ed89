"""Fixtures of the adversarial corpus (issue 17): one tiny-model project trained once per session through
the real training flow, and a copy of it for each case that may change it (``testkit.adversarial``)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import types
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from testkit.adversarial import Cli
from testkit.projects import built_once, clone_project
from testkit.tiny_settings import training_overrides

# The tiny model's settings are written into the project's params.yaml, so that every command (in this
# process or another) trains and scores with it; drift settings sized for a few hundred rows.
DRIFT = {"max_rows": 300, "embedding_plot_rows": 60, "min_labelled_rows": 50}


def write_settings(project: Path, tiny_model_dir: Path) -> None:
    params = project / "params.yaml"
    raw = yaml.safe_load(params.read_text())
    for section, values in {**training_overrides(tiny_model_dir), "drift": DRIFT}.items():
        raw[section].update(values)
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    for cmd in (["git", "add", "params.yaml"], ["git", "commit", "-q", "-m", "tiny model settings"]):
        subprocess.run(cmd, cwd=project, check=True, capture_output=True)


@contextlib.contextmanager
def own_tracking_store() -> Iterator[None]:
    """No MLFLOW_TRACKING_URI, before and after: each project's own store is used. (mlflow.set_tracking_uri
    also sets that variable, and it wins over params.yaml: left behind, the next command would write
    into the last project's store.)"""
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        yield
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(autouse=True)
def _own_tracking_store():
    with own_tracking_store():
        yield


@pytest.fixture(scope="session")
def eval_texts_free(tfns_valid) -> pd.DataFrame:
    """Labelled TFNS validation rows outside the projects' evaluation sample: news to score."""
    from finsent.data.frames import stratified_sample

    held = set(stratified_sample(tfns_valid, 200, 0)["text"])
    return tfns_valid[~tfns_valid["text"].isin(held)].drop_duplicates("text").reset_index(drop=True)


@pytest.fixture(scope="session")
def untrained_base(tmp_path_factory, project_template, tiny_model_dir) -> Path:
    """A project with its data versioned (data.dvc, pushed to its DVC remote) and no model yet."""
    from finsent.config import Params
    from finsent.data.versioning import ensure_data

    project = clone_project(project_template, tmp_path_factory.mktemp("adv-untrained"))
    write_settings(project, tiny_model_dir)
    ensure_data(project, Params().data, log=lambda *_: None)
    return project


@pytest.fixture(scope="session")
def trained_base(untrained_base, tmp_path_factory, prefect_harness) -> Path:
    """The untrained project after one run of the real training flow: version 1 is champion. Trained
    once per run (``built_once``) and copied into each worker. Cases read it only (the snapshot checks
    that); those that may change it take ``trained``."""

    def train(folder: Path) -> Path:
        from flows.training import training_flow

        project = clone_project(untrained_base, folder)
        with own_tracking_store():
            summary = training_flow(root=str(project))
        assert summary.version == "1" and summary.promoted
        return project

    return clone_project(built_once(tmp_path_factory, "adv-trained", train), tmp_path_factory.mktemp("adv-trained"))


@pytest.fixture(scope="session")
def promoted_base(trained_base, tmp_path_factory) -> Path:
    """Two versions, each promoted by the gate in turn: champion 2, and 1 to roll back to."""
    from testkit import registry_synthetic as rs

    project = clone_project(trained_base, tmp_path_factory.mktemp("adv-promoted"))
    model = next((project / "artifacts" / "runs").glob("*/train/model"))
    with own_tracking_store():
        summary = rs.register_synthetic(project, model, 1.0)
    assert summary.version == "2" and summary.promoted, summary
    return project


@pytest.fixture
def untrained(untrained_base, tmp_path) -> Path:
    return clone_project(untrained_base, tmp_path / "w")


@pytest.fixture
def trained(trained_base, tmp_path) -> Path:
    return clone_project(trained_base, tmp_path / "w")


@pytest.fixture
def promoted(promoted_base, tmp_path) -> Path:
    return clone_project(promoted_base, tmp_path / "w")


@pytest.fixture
def cli(trained, capsys) -> Cli:
    """``finsent`` on this case's own copy of the trained project."""
    return Cli(trained, capsys)


@pytest.fixture
def shared_cli(trained_base, capsys) -> Cli:
    """``finsent`` on the shared trained project: for cases that fail before they could write anything
    (the snapshot still checks that nothing changed)."""
    return Cli(trained_base, capsys)


@pytest.fixture
def news(tmp_path, eval_texts_free):
    """``news(rows, name=..., **columns)``: a CSV of labelled news to score, published over three days."""

    def make(rows: int = 40, name: str = "news.csv", start: int = 0, text_suffix: str = "") -> Path:
        df = eval_texts_free.iloc[start : start + rows][["text", "label"]].copy()
        assert len(df) == rows, f"only {len(df)} free rows"
        df["text"] = df["text"] + text_suffix
        df["published_at"] = [f"2024-03-0{1 + i % 3}" for i in range(rows)]
        df["ticker"] = ["MSFT" if i % 2 else "$AMZN" for i in range(rows)]
        path = tmp_path / name
        df.to_csv(path, index=False)
        return path

    return make


GOOD_ROWS = ["Acme shares soar after record profit", "Acme warns on margins as costs climb", "Acme holds its annual meeting"]


@pytest.fixture
def batch(tmp_path):
    """``batch(name, texts=..., labels=...)``: a small labelled CSV that passes validation."""

    def make(name: str = "extra", texts=None, labels=None, folder: Path | None = None) -> Path:
        texts = texts or [f"{t} ({name})" for t in GOOD_ROWS]
        labels = labels or ["bullish", "bearish", "neutral"][: len(texts)]
        path = (folder or tmp_path) / f"{name}.csv"
        pd.DataFrame({"text": texts, "label": labels}).to_csv(path, index=False)
        return path

    return make


# --- mounts (root only; a case skips where the kernel refuses) -------------------------------------------


@contextlib.contextmanager
def mounted(args: list[str], target: Path, what: str) -> Iterator[Path]:
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount {what} here: {done.stderr.strip() or done.returncode}")
    try:
        yield target
    finally:
        if subprocess.run(["umount", str(target)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


@contextlib.contextmanager
def tmpfs(target: Path, size: str) -> Iterator[Path]:
    """A small tmpfs at ``target``: a disk that fills up."""
    with mounted(["-t", "tmpfs", "-o", f"size={size}", "tmpfs"], target, f"a {size} tmpfs") as path:
        yield path


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` bind-mounted read-only onto itself (file modes do not stop root; a mount does)."""
    with mounted(["--bind", str(folder)], folder, "a bind mount"):
        done = subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {done.stderr.strip()}")
        yield folder


def fill(folder: Path, leave_bytes: int) -> Path:
    """Fill the file system of ``folder`` until about ``leave_bytes`` are free."""
    filler = folder / ".filler"
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(filler, "wb", buffering=0) as handle, contextlib.suppress(OSError):  # unbuffered: nothing left to flush
        handle.write(b"\0" * max(0, free - leave_bytes))
    return filler


@pytest.fixture
def mounts():
    """The mount helpers, as a fixture: ``mounts.tmpfs``, ``mounts.read_only``, ``mounts.fill``."""
    return types.SimpleNamespace(tmpfs=tmpfs, read_only=read_only, fill=fill)
