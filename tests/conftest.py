"""Shared fixtures: quiet/offline settings, a tiny random BERT, a throw-away project with its own git
repo, DVC remote and MLflow store, and one Prefect test harness per session."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from finsent.env import apply_quiet_offline

apply_quiet_offline()  # before any library reads its settings

REPO = Path(__file__).resolve().parents[1]
TFNS = REPO / "datasets" / "tfns"


def _load_test_helpers() -> None:
    """Helper modules in tests/code, importable by name from the tests (pytest runs with
    --import-mode=importlib, so test folders are not on sys.path)."""
    import importlib.util

    for name in ("registry_synthetic", "tiny_settings", "local_services"):
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / "code" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)


_load_test_helpers()


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    from finsent.training.model import packaged_encoder_path

    return AutoTokenizer.from_pretrained(packaged_encoder_path())


def tiny_bert(tokenizer, seed: int = 0):
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, num_labels=3,
    )
    return BertForSequenceClassification(config)


@pytest.fixture(scope="session")
def make_tiny_bert(tokenizer):
    return lambda seed=0: tiny_bert(tokenizer, seed)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer) -> Path:
    """A random-initialised 2-layer, 32-wide BERT with the real MiniLM tokenizer, saved like a hub model."""
    path = tmp_path_factory.mktemp("tiny-bert")
    tiny_bert(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tfns_train() -> pd.DataFrame:
    from finsent.data.frames import read_dataset

    return read_dataset(TFNS / "sent_train.csv")


@pytest.fixture(scope="session")
def tfns_valid() -> pd.DataFrame:
    from finsent.data.frames import read_dataset

    return read_dataset(TFNS / "sent_valid.csv")


def _sample(df: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    from finsent.data.frames import stratified_sample

    return stratified_sample(df, n, seed)[["text", "label"]]


def make_project(root: Path, train: pd.DataFrame, valid: pd.DataFrame) -> Path:
    """A minimal finsent project: params.yaml, a shipped dataset, git + DVC with a local remote."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    shipped = root / "datasets" / "tfns"
    shipped.mkdir(parents=True)
    train.to_csv(shipped / "sent_train.csv", index=False)
    valid.to_csv(shipped / "sent_valid.csv", index=False)
    (root / ".gitignore").write_text("/mlflow.db\n/mlruns/\n/artifacts/\n/quarantine/\n/.dvc-storage/\n*.promotion.lock\n*.init.lock\n")
    run = lambda *cmd: subprocess.run(cmd, cwd=root, check=True, capture_output=True)  # noqa: E731
    run("git", "init", "-q", "-b", "main")
    run("git", "config", "user.email", "tests@finsent.invalid")
    run("git", "config", "user.name", "finsent tests")
    dvc = str(Path(sys.executable).parent / "dvc")
    run(dvc, "init", "-q")
    run(dvc, "config", "core.analytics", "false")
    (root / ".dvc" / "config").write_text(
        "[core]\n    analytics = false\n    remote = local\n['remote \"local\"']\n    url = ../.dvc-storage\n"
    )
    run("git", "add", "-A")
    run("git", "commit", "-q", "-m", "project")
    return root


@pytest.fixture
def project(tmp_path, tfns_train, tfns_valid) -> Path:
    """A throw-away project holding a stratified sample of TFNS (400 train, 200 eval rows)."""
    return make_project(tmp_path / "project", _sample(tfns_train, 400), _sample(tfns_valid, 200))


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def postgres():
    """A throw-away PostgreSQL server (SQLAlchemy URL without a database); skips where none is installed."""
    import local_services

    try:
        with local_services.postgres_server() as url:
            yield url
    except local_services.ServiceUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def s3():
    """An S3 endpoint (moto) and the credentials for it in the environment."""
    import local_services

    with pytest.MonkeyPatch.context() as patch:
        for key, value in local_services.S3_CREDENTIALS.items():
            patch.setenv(key, value)
        with local_services.s3_server() as endpoint:
            yield endpoint
