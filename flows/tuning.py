"""The tuning flow: the training flow's data stages, then an Optuna search on the dev split.

Trials run as Prefect tasks, ``tune.parallel_trials`` at a time; each is a nested MLflow run. The
best trial's values are written into the params file the search ran with (or ``tune.write_params_to``),
which the training flow reads. Rerunning the flow resumes the study: only the missing trials run.

Prefect's UI shows every trial of the study (table artifact ``finsent-tuning-trials``) and the best one
(markdown ``finsent-tuning-best``); a report that cannot be published never fails the search.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait

from finsent import augment
from finsent.config import Params, load_params, replace
from finsent.data import prepare
from finsent.paths import Layout
from finsent.training import tune, tune_markdown
from flows import artifacts
from flows.training import augment_data, check_tracking_store, prepare_data, restore_data, validate_data, version_data


@task(retries=2, retry_delay_seconds=5)
def check_study_storage(params: Params, root: Path) -> None:
    tune.check_storage(params.tune, root)


@task(retries=2, retry_delay_seconds=5)
def open_search(params: Params, root: Path, data_version, augmented: augment.AugmentSummary) -> tune.Search:
    return tune.open_search(params, root, data_version.to_tags(), derived_md5=augmented.md5)


@task
def run_trial(
    params: Params, root: Path, search: tune.Search, augmented: augment.AugmentSummary, prepared: prepare.PrepareSummary
) -> tune.TrialResult:
    return tune.run_trial(params, root, search, Path(augmented.output), prepared.dev_path)


@task
def finish_search(params: Params, root: Path, search: tune.Search, params_path: Path) -> tune.SearchSummary:
    return tune.finish_search(params, root, search, params_path)


# The two reports never fail the flow: one that cannot be built or sent is logged (flows/artifacts.py).
@task(cache_policy=NO_CACHE)
def publish_trials(params: Params, search: tune.Search) -> None:
    artifacts.publish_table(
        artifacts.TUNING_TRIALS,
        lambda: tune_markdown.trial_rows(tune.study_trials(params, search)),
        f"the trials of study {search.study_name}",
    )


@task(cache_policy=NO_CACHE)
def publish_best(summary: tune.SearchSummary) -> None:
    artifacts.publish_markdown(
        artifacts.TUNING_BEST, lambda: tune_markdown.best_trial_markdown(summary), lambda: tune_markdown.best_trial_headline(summary)
    )


@flow(name="finsent-tuning", log_prints=True)
def tuning_flow(params_path: str = "params.yaml", root: str = ".", overrides: dict | None = None) -> tune.SearchSummary:
    project = Path(root).resolve()
    params = replace(load_params(project / params_path), **(overrides or {}))
    run = Layout.of(project, params).new_run()
    with tune.search_lock(project, params):
        check_tracking_store(params, project)
        check_study_storage(params, project)
        restore_data(params, project)
        validate_data(params, project, run)
        data_version = version_data(params, project)
        prepared = prepare_data(params, project, run)  # trials read no news: TAPT and self-training are not searched
        augmented = augment_data(params, prepared, run)
        search = open_search(params, project, data_version, augmented)
        for size in tune.waves(search.trials_left, params.tune.parallel_trials):
            wait([run_trial.submit(params, project, search, augmented, prepared) for _ in range(size)])
        publish_trials(params, search)  # before the outcome: a search with no complete trial shows its failures too
        summary = finish_search(params, project, search, project / params_path)
        publish_best(summary)
        return summary


if __name__ == "__main__":
    from finsent.env import apply_quiet_offline

    apply_quiet_offline()
    print(tuning_flow())
