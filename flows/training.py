"""The training flow: restore data -> validate -> version -> prepare (train/dev/test) -> augment -> train -> evaluate -> register.

Every stage writes into one run folder laid out by ``finsent.paths.RunLayout`` (the same layout that
``dvc repro`` writes under ``artifacts/pipeline``); ``data/`` holds only labelled rows, so the data
version is taken right after validation.

Each task calls one library stage; retries sit only on the I/O that can fail transiently and is safe
to repeat (reaching the tracking store, DVC pulls and pushes, reading the predictions store's news).
With TAPT or self-training on, the store's news goes to the prepare stage, which writes it as the
unlabelled pool (no dev or test text) that training reads. Registration is not retried: a repeat
could register a second version.

The run ends by publishing its report to Prefect's UI (artifact ``finsent-training``: the test metrics,
the gate's decision with every reason, the MLflow run); a report that cannot be published never fails it.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from finsent import augment, tracking
from finsent.config import Params, load_params, replace
from finsent.data import prepare, validate, versioning
from finsent.evaluation import evaluate
from finsent.monitoring import alerts, store
from finsent.paths import Layout, RunLayout
from finsent.registry import markdown, register
from finsent.registry.versions import RegistrationSummary
from finsent.training import train
from flows import artifacts


@task(retries=2, retry_delay_seconds=5)
def check_tracking_store(params: Params, root: Path) -> None:
    tracking.check_store(tracking.resolve_tracking_uri(params.register, root))


@task(retries=2, retry_delay_seconds=5)
def restore_data(params: Params, root: Path) -> versioning.DataVersion:
    return versioning.ensure_data(root, params.data)


@task
def validate_data(params: Params, root: Path, run: RunLayout) -> dict:
    return validate.run(params, root, run.validation)


@task(retries=2, retry_delay_seconds=5)
def version_data(params: Params, root: Path) -> versioning.DataVersion:
    return versioning.version_workspace(root, params.data)


# The predictions store's news, the unlabelled text of TAPT and self-training: read only when one is on.
@task(retries=2, retry_delay_seconds=5)
def gather_news(params: Params, root: Path) -> list[str] | None:
    return store.news_for_training(params.train, params.monitor, root)


@task
def prepare_data(params: Params, root: Path, run: RunLayout, news: list[str] | None = None) -> prepare.PrepareSummary:
    return prepare.run(params.data, root, run.prepared.dir, news_texts=news)


@task
def augment_data(params: Params, prepared: prepare.PrepareSummary, run: RunLayout) -> augment.AugmentSummary:
    heldout = [prepared.dev_path, prepared.eval_path]
    return augment.run(params.augment, prepared.train_path, heldout, run.augmented_train)


@task
def train_model(params: Params, augmented: augment.AugmentSummary, prepared: prepare.PrepareSummary, run: RunLayout) -> train.TrainSummary:
    return train.run(params.train, augmented.output, run.train_dir, dev_path=prepared.dev_path, unlabelled_path=prepared.unlabelled_path)


@task
def evaluate_model(params: Params, trained: train.TrainSummary, prepared: prepare.PrepareSummary, run: RunLayout) -> evaluate.EvalSummary:
    return evaluate.run(params.evaluate, trained.model_dir, prepared.eval_path, run.eval_dir, params.train)


@task
def register_model(
    params: Params,
    root: Path,
    run: RunLayout,
    prepared: prepare.PrepareSummary,
    data_version: versioning.DataVersion,
    validation: dict,
    augmented: augment.AugmentSummary,
) -> RegistrationSummary:
    return register.run(
        params,
        root,
        run.train_dir,
        run.eval_dir,
        Path(prepared.eval_path),
        data_version,
        validation,
        extra_tags={
            "run_dir": str(run.dir),
            "augment.md5": augmented.md5,
            "augment.rows_added": str(augmented.rows_added),
            "dev.rows": str(prepared.dev_rows),
        },
    )


# Not retried and not cached: it posts to webhooks; it never fails (a refused version's alert is logged
# when the store or a webhook is down).
@task(cache_policy=NO_CACHE)
def alert_if_refused(params: Params, root: Path, registration: RegistrationSummary) -> str | None:
    return alerts.alert_on_registration(params, root, registration)


# Never fails the flow: a report that cannot be built or sent is logged (flows/artifacts.py).
@task(cache_policy=NO_CACHE)
def publish_report(params: Params, root: Path, run: RunLayout, registration: RegistrationSummary) -> None:
    artifacts.publish_markdown(
        artifacts.TRAINING,
        lambda: markdown.training_report(run, registration, tracking.resolve_tracking_uri(params.register, root)),
        lambda: markdown.training_headline(registration),
    )


@flow(name="finsent-training", log_prints=True)
def training_flow(params_path: str = "params.yaml", root: str = ".", overrides: dict | None = None) -> RegistrationSummary:
    project = Path(root).resolve()
    params = replace(load_params(project / params_path), **(overrides or {}))
    run = Layout.of(project, params).new_run()
    check_tracking_store(params, project)
    restore_data(params, project)
    validation = validate_data(params, project, run)
    data_version = version_data(params, project)
    prepared = prepare_data(params, project, run, gather_news(params, project))
    augmented = augment_data(params, prepared, run)
    trained = train_model(params, augmented, prepared, run)
    evaluate_model(params, trained, prepared, run)
    registration = register_model(params, project, run, prepared, data_version, validation, augmented)
    alert_if_refused(params, project, registration)
    publish_report(params, project, run, registration)
    return registration


if __name__ == "__main__":
    from finsent.env import apply_quiet_offline

    apply_quiet_offline()
    print(training_flow())
