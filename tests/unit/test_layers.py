"""The import layers in .importlinter hold, and a violation of them fails the check (as `make check`
runs it), so the contracts cannot pass by accident."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    """lint-imports with the repository's contracts over the packages found in ``tree``."""
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree}"}
    command = [str(Path(sys.executable).with_name("lint-imports")), "--config", str(REPO / ".importlinter"), "--no-cache"]
    return subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def tree(tmp_path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "src" / "finsent", tmp_path / "src" / "finsent", ignore=ignore)
    shutil.copytree(REPO / "flows", tmp_path / "flows", ignore=ignore)
    return tmp_path


def test_the_contracts_hold(tree):
    done = lint_imports(tree)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    "module, line, contract",
    [
        ("data/frames.py", "from finsent.monitoring import store", "Rooms are ordered layers"),  # a lower room reaching up
        ("training/score.py", "import prefect", "never imports prefect"),
        ("registry/versions.py", "from flows import training", "only the CLI starts flows"),
        ("vocabulary.py", "from finsent import tracking", "Inside the floor"),
    ],
)
def test_a_violation_fails_the_check(tree, module, line, contract):
    path = tree / "src" / "finsent" / module
    path.write_text(path.read_text() + f"\n{line}  # injected by the test\n")
    done = lint_imports(tree)
    assert done.returncode != 0
    assert contract in done.stdout and "BROKEN" in done.stdout
