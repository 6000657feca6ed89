"""The training flow: restore data -> validate -> prepare (train/dev/test) -> augment -> version -> train -> evaluate -> register.

Each task calls one library stage; retries sit only on the I/O that can fail transiently and is safe
to repeat (reaching the tracking store, DVC pulls and pushes). Registration is not retried: a repeat
could register a second version.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from prefect import flow, task

from finsent import augment, evaluate, prepare, register, registry, train, validate, versioning
from finsent.config import Params, load_params, replace


@task(retries=2, retry_delay_seconds=5)
def check_tracking_store(params: Params, root: Path) -> None:
    registry.check_store(registry.resolve_tracking_uri(params.register, root))


@task(retries=2, retry_delay_seconds=5)
def restore_data(params: Params, root: Path) -> versioning.DataVersion:
    return versioning.ensure_data(root, params.data)


@task
def validate_data(params: Params, root: Path, run_dir: Path) -> dict:
    return validate.run(params, root, run_dir / "validation.json")


@task(retries=2, retry_delay_seconds=5)
def version_data(params: Params, root: Path) -> versioning.DataVersion:
    return versioning.version_workspace(root, params.data)


@task
def prepare_data(params: Params, root: Path, run_dir: Path) -> prepare.PrepareSummary:
    return prepare.run(params.data, root, run_dir / "data", dev_path=root / params.data.data_dir / params.data.dev_file)


@task
def augment_data(params: Params, root: Path, prepared: prepare.PrepareSummary) -> augment.AugmentSummary:
    heldout = [prepared.dev_path, prepared.eval_path]
    return augment.run(params.augment, prepared.train_path, heldout, root / params.data.data_dir / params.augment.output_file)


@task
def train_model(params: Params, augmented: augment.AugmentSummary, prepared: prepare.PrepareSummary, run_dir: Path) -> train.TrainSummary:
    return train.run(params.train, augmented.output, run_dir / "train", dev_path=prepared.dev_path)


@task
def evaluate_model(params: Params, trained: train.TrainSummary, prepared: prepare.PrepareSummary, run_dir: Path) -> evaluate.EvalSummary:
    return evaluate.run(params.evaluate, trained.model_dir, prepared.eval_path, run_dir / "eval", params.train)


@task
def register_model(
    params: Params,
    root: Path,
    run_dir: Path,
    prepared: prepare.PrepareSummary,
    evaluated: evaluate.EvalSummary,
    data_version: versioning.DataVersion,
    validation: dict,
    augmented: augment.AugmentSummary,
) -> registry.RegistrationSummary:
    return register.run(
        params, root, run_dir / "train", Path(evaluated.out_dir), Path(prepared.eval_path), data_version, validation,
        extra_tags={
            "run_dir": str(run_dir),
            "augment.md5": augmented.md5,
            "augment.rows_added": str(augmented.rows_added),
            "dev.rows": str(prepared.dev_rows),
        },
    )


def new_run_dir(params: Params, root: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return Path(root).resolve() / params.artifacts_dir / "runs" / stamp


@flow(name="finsent-training", log_prints=True)
def training_flow(params_path: str = "params.yaml", root: str = ".", overrides: dict | None = None) -> registry.RegistrationSummary:
    project = Path(root).resolve()
    params = replace(load_params(project / params_path), **(overrides or {}))
    run_dir = new_run_dir(params, project)
    check_tracking_store(params, project)
    restore_data(params, project)
    validation = validate_data(params, project, run_dir)
    prepared = prepare_data(params, project, run_dir)
    augmented = augment_data(params, project, prepared)
    data_version = version_data(params, project)
    trained = train_model(params, augmented, prepared, run_dir)
    evaluated = evaluate_model(params, trained, prepared, run_dir)
    return register_model(params, project, run_dir, prepared, evaluated, data_version, validation, augmented)


if __name__ == "__main__":
    from finsent.env import apply_quiet_offline

    apply_quiet_offline()
    print(training_flow())
