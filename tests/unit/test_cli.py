"""The command line without a project: --set parsing, the errors it reports as one line, and the
commands that stop at their arguments. (On a throw-away project: tests/integration/test_cli*.py.)"""

import shutil
from pathlib import Path

import pytest

from finsent.cli import main
from finsent.config import parse_overrides

REPO = Path(__file__).resolve().parents[2]


def test_overrides_parse_yaml_values():
    assert parse_overrides(["train.epochs=1", "data.max_train_rows=null", "gate.behaviour_floors={invariance: 0}"]) == {
        "train": {"epochs": 1},
        "data": {"max_train_rows": None},
        "gate": {"behaviour_floors": {"invariance": 0}},
    }


EXPECTED_ERRORS = {  # the errors the CLI reports as one line: every one is a FinsentError
    "finsent.config": "ConfigError",
    "finsent.data.frames": "DataError",
    "finsent.training.model": "ModelError",
    "finsent.tracking": "RegistryError",
    "finsent.data.validate": "ValidationError",
    "finsent.data.versioning": "VersioningError",
    "finsent.monitoring.store": "StoreError",
    "finsent.training.tune": "TuneError",
    "finsent.augment.lexicon": "LexiconError",
    "finsent.monitoring.drift": "DriftError",
    "flows.serve": "ServerError",
}


def test_every_expected_error_names_a_real_exception_class():
    import importlib

    from finsent.errors import FinsentError

    for module, name in EXPECTED_ERRORS.items():
        assert issubclass(getattr(importlib.import_module(module), name), Exception), f"{module}.{name}"
        assert issubclass(getattr(importlib.import_module(module), name), FinsentError), f"{module}.{name}"


def test_a_manual_promotion_needs_a_reason(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--root", str(tmp_path), "registry", "promote", "1"])
    assert exc.value.code == 2 and "--reason" in capsys.readouterr().err


def test_serve_without_a_server_needs_its_url(tmp_path, monkeypatch, capsys):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert main(["--root", str(tmp_path), "serve", "--no-server"]) == 2
    assert "PREFECT_API_URL" in capsys.readouterr().err
