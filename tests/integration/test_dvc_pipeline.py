"""`make repro`: dvc.yaml's stages run the library end to end, and DVC reruns only what changed."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from testkit.tiny_settings import training_overrides

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]  # one `dvc repro` of six stages, each a fresh `finsent` process


def command(project: Path, program: str, *args: str) -> subprocess.CompletedProcess:
    """``program`` (``dvc`` or ``finsent``) run in ``project`` as `make repro` runs it."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([str(bin_dir / program), *args], cwd=project, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{program} {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def dvc(project: Path, *args: str) -> subprocess.CompletedProcess:
    return command(project, "dvc", *args)


def write_params(project: Path, changes: dict) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for section, values in changes.items():
        params[section] = {**params[section], **values}
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def stages_run(result: subprocess.CompletedProcess) -> set[str]:
    return {line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Running stage '")}


def test_repro_runs_every_stage_then_only_what_a_change_touches(project, tiny_model_dir):
    shutil.copy(REPO / "dvc.yaml", project / "dvc.yaml")
    shutil.copytree(REPO / "src" / "finsent", project / "src" / "finsent", ignore=shutil.ignore_patterns("__pycache__"))
    write_params(project, training_overrides(tiny_model_dir))

    command(project, "finsent", "data", "init")  # `make repro`: data/ from the shipped copy, then the stages
    first = dvc(project, "repro")
    assert stages_run(first) == {"validate", "prepare", "augment", "train", "evaluate", "register"}
    pipeline = project / "artifacts" / "pipeline"
    registration = json.loads((pipeline / "registration.json").read_text())
    assert registration["version"] == "1" and registration["promoted"]
    summary = json.loads((pipeline / "train" / "train_summary.json").read_text())
    assert summary["dev_rows"] > 0 and summary["dev_history"]  # the dev split chose the weights
    assert "Data and pipelines are up to date" in dvc(project, "status").stdout

    # No dev split: the pipeline still runs (nothing depends on a dev.csv that is not written).
    write_params(project, {"data": {"dev_fraction": 0.0}})
    second = dvc(project, "repro", "train")  # up to training: the stages after it are covered above
    assert stages_run(second) == {"prepare", "augment", "train"}
    assert not (pipeline / "data" / "dev.csv").exists()
    assert json.loads((pipeline / "train" / "train_summary.json").read_text())["dev_rows"] == 0
