"""Bad settings, section by section, through every command: wrong types, values out of range, unknown
keys and unknown choices are named (the key, never the whole file) before the command touches anything.
The cases of tests/unit/test_bad_input.py are not repeated here."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

# Every command, each with the arguments it needs: a bad setting must stop each of them at load time.
COMMANDS = {
    "train": ["train"],
    "tune": ["tune"],
    "stage validate": ["stage", "validate"],
    "stage prepare": ["stage", "prepare"],
    "stage augment": ["stage", "augment"],
    "stage train": ["stage", "train"],
    "stage evaluate": ["stage", "evaluate"],
    "stage register": ["stage", "register"],
    "predict": ["predict", "Acme beats estimates"],
    "data add": ["data", "add", "news.csv"],
    "data status": ["data", "status"],
    "data init": ["data", "init"],
    "data checkout": ["data", "checkout", "1"],
    "registry show": ["registry", "show"],
    "registry history": ["registry", "history"],
    "registry lineage": ["registry", "lineage", "1"],
    "registry promote": ["registry", "promote", "1", "--reason", "by hand"],
    "registry rollback": ["registry", "rollback"],
    "score": ["score", "news.csv"],
    "monitor index": ["monitor", "index"],
    "monitor drift": ["monitor", "drift", "news.csv"],
    "monitor run": ["monitor", "run", "news.csv"],
    "serve": ["serve", "--no-server"],
    "deploy": ["deploy"],
    "api": ["api"],
}

# (override, command, what the error names)
CASES = [
    # data
    ("data.dev_fraction=0.7", "data status", "data.dev_fraction"),
    ("data.seed=abc", "data add", "data.seed"),
    ("data.max_eval_rows=0", "stage prepare", "data.max_eval_rows"),
    ("data.batchs_dir=extra", "data checkout", "batchs_dir"),
    ("data.data_dir=[a, b]", "data init", "data.data_dir"),
    # validate
    ("validate.min_text_chars=two", "stage validate", "validate.min_text_chars"),
    ("validate.class_share_bounds=[0.1, 0.9]", "data add", "validate.class_share_bounds"),
    ("validate.max_duplicate_share=1.5", "data add", "validate.max_duplicate_share"),
    ("validate.min_rows=-1", "stage validate", "validate.min_rows"),
    ("validate.max_text_chars=1", "data add", "validate.max_text_chars"),
    ("validate.class_share_bounds={bearish: [0.5]}", "train", "validate.class_share_bounds"),
    ("validate.class_share_bounds={bullish: [0.7, 0.2]}", "stage validate", "validate.class_share_bounds"),
    ("validate.class_share_bounds={sideways: [0.0, 1.0]}", "data add", "validate.class_share_bounds"),
    ("validate.report_exampels=3", "data add", "report_exampels"),
    # train
    ("train.batch_size=0", "train", "batch_size"),
    ("train.max_length=4", "stage train", "max_length"),
    ("train.precision=fp16", "tune", "train.precision"),
    ("train.schedule=step", "train", "train.schedule"),
    ("train.class_weighting=auto", "stage train", "train.class_weighting"),
    ("train.on_cuda={dropout: 0.2}", "train", "train.on_cuda"),
    ("train.distill_alpha=2", "stage train", "train.distill_alpha"),
    ("train.num_threads=0", "stage train", "train.num_threads"),
    ("train.epochs=two", "train", "train.epochs"),
    ("train.progress=maybe", "train", "train.progress"),
    ("train.distill_from=teacher-folder", "train", "train.distill_from"),
    ("train.early_stopping_patience=-1", "tune", "early_stopping_patience"),
    # evaluate
    ("evaluate.batch_size=0", "stage evaluate", "evaluate.batch_size"),
    ("evaluate.calibration_bins=0", "stage evaluate", "evaluate.calibration_bins"),
    ("evaluate.short_text_chars=500", "train", "evaluate.short_text_chars"),
    ("evaluate.batch_size=1.5", "stage evaluate", "evaluate.batch_size"),
    # register
    ("register.lock_url=mysql://u@127.0.0.1/locks", "registry promote", "register.lock_url"),
    ("register.experiment=my experiment", "registry history", "register.experiment"),
    ("register.tracking_uri=5", "registry show", "register.tracking_uri"),
    ("register.artifact_dir=null", "stage register", "register.artifact_dir"),
    # gate
    ("gate.test=ttest", "train", "gate.test"),
    ("gate.confidence=0.3", "stage register", "gate.confidence"),
    ("gate.bootstrap_samples=10", "train", "gate.bootstrap_samples"),
    ("gate.behaviour_floors={invariance: 2, directional: 0, minimum_functionality: 0}", "train", "gate.behaviour_floors"),
    ("gate.behaviour_floors={invariance: 0.5}", "stage register", "gate.behaviour_floors"),
    ("gate.min_gain=-0.1", "registry promote", "gate.min_gain"),
    # monitor
    ("monitor.index_from=median", "monitor index", "monitor.index_from"),
    ("monitor.alert_threshold=3", "monitor index", "monitor.alert_threshold"),
    ("monitor.plot_format=svg", "monitor index", "monitor.plot_format"),
    ("monitor.company_tickers={apple: ''}", "score", "monitor.company_tickers"),
    ("monitor.batch_size=0", "score", "monitor"),
    ("monitor.store_url=[sqlite]", "score", "monitor.store_url"),
    ("monitor.plot_max_tickers=0", "monitor index", "monitor.plot_max_tickers"),
    # drift
    ("drift.signals=[vibes]", "monitor drift", "drift.signals"),
    ("drift.max_rows=10", "monitor drift", "max_rows"),
    ("drift.text_threshold=2", "monitor drift", "drift.text_threshold"),
    ("drift.descriptor_threshold=-0.1", "monitor run", "drift.descriptor_threshold"),
    # retrain
    ("retrain.signals=[vibes]", "monitor run", "retrain.signals"),
    ("retrain.min_signals=0", "monitor run", "retrain"),
    ("retrain.cooldown_hours=-1", "serve", "retrain"),
    ("retrain.new_labels_trigger_rows=-5", "monitor run", "retrain.new_labels_trigger_rows"),
    # augment
    ("augment.variants_per_row={sideways: 1}", "train", "augment.variants_per_row"),
    ("augment.augmenters={gpt: 1}", "stage augment", "augment.augmenters"),
    ("augment.near_duplicate_threshold=0", "stage augment", "augment.near_duplicate_threshold"),
    ("augment.backtranslation_model=/models/en-de", "tune", "backtranslation_reverse_model"),
    ("augment.enabled=sometimes", "stage augment", "augment.enabled"),
    # schedule
    ("schedule.retrain_cron=every day", "serve", "schedule.retrain_cron"),
    ("schedule.server_port=70000", "serve", "schedule.server_port"),
    ("schedule.work_pool=' '", "deploy", "schedule.work_pool"),
    ("schedule.timezone=Mars/Olympus_Mons", "deploy", "schedule.timezone"),
    # service
    ("service.precision=fp16", "api", "service.precision"),
    ("service.max_batch_size=0", "api", "service.max_batch_size"),
    # tune
    ("tune.n_trials=0", "tune", "tune"),
    ("tune.search_space={}", "tune", "tune.search_space"),
    ("tune.search_space={dropout: {low: 0.0, high: 0.5}}", "tune", "tune.search_space"),
    ("tune.search_space={learning_rate: {low: 1.0, high: 0.1}}", "tune", "tune.search_space.learning_rate"),
    ("tune.write_params_to=best.txt", "tune", "tune.write_params_to"),
    ("tune.devices=[tpu:0]", "tune", "tune.devices"),
]


@pytest.mark.parametrize("override, command, says", CASES, ids=[f"{c[1]}:{c[0].split('=')[0]}" for c in CASES])
def test_a_bad_setting_is_named_before_anything_runs(shared_cli, override, command, says):
    message = shared_cli.fails("--set", override, *COMMANDS[command], says=says)
    assert len(message) < 2000  # the key and the rule, not a dump


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--set", "train.epochs"], "section.key=value"),
        (["--set", ".epochs=1"], "unknown parameter section"),
        (["--set", "train.=1"], "unknown key"),
        (["--set", "train.epochs=1", "--set", "train.epochz=2"], "epochz"),
        (["tune", "--trials", "0"], "n_trials"),
        (["tune", "--parallel", "-1"], "parallel_trials"),
    ],
    ids=["no-equals", "no-section", "no-key", "second-override", "tune-trials-0", "tune-parallel-negative"],
)
def test_a_malformed_override_or_flag_is_named(shared_cli, flags, says):
    args = flags if flags[0] == "tune" else [*flags, "train"]
    shared_cli.fails(*args, says=says)


@pytest.mark.parametrize(
    "content, says",
    [
        ("train: 5\n", "train: expected a mapping"),
        ("artifacts_dir: [a, b]\n", "artifacts_dir"),
        ("train:\n  epochs: 1\ntrain:\n  epochs: [\n", "not valid YAML"),
        ("data:\n  - data_dir\n", "data: expected a mapping"),
    ],
    ids=["section-scalar", "artifacts-dir-list", "broken-second-section", "section-list"],
)
def test_a_params_file_of_the_wrong_shape_is_named(shared_cli, tmp_path, content, says):
    params = tmp_path / "other.yaml"
    params.write_text(content)
    shared_cli.fails("--params", str(params), "data", "status", says=says)


def test_a_params_path_that_is_a_folder_is_named(shared_cli):
    shared_cli.fails("--params", "data", "registry", "show", says="parameters file not found")


def test_a_missing_project_root_is_named(shared_cli, tmp_path):
    shared_cli.fails("--root", str(tmp_path / "nowhere"), "data", "status", says="parameters file not found")
