from pathlib import Path

import pytest

from finsent.config import ConfigError, Params, ScheduleParams, TrainParams, from_dict, load_params, replace

REPO = Path(__file__).resolve().parents[2]


def test_params_yaml_loads_into_typed_sections():
    p = load_params(REPO / "params.yaml")
    assert isinstance(p, Params)
    assert isinstance(p.train, TrainParams)
    assert p.train.learning_rate == pytest.approx(1e-4)
    assert p.register.model_name == "finsent-sentiment"


def test_unknown_key_is_rejected_with_its_name(tmp_path):
    (tmp_path / "p.yaml").write_text("train:\n  epochz: 3\n")
    with pytest.raises(ConfigError, match="epochz"):
        load_params(tmp_path / "p.yaml")


def test_wrong_type_is_rejected(tmp_path):
    (tmp_path / "p.yaml").write_text("train:\n  batch_size: many\n")
    with pytest.raises(ConfigError, match="train.batch_size"):
        load_params(tmp_path / "p.yaml")


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")


def test_scientific_notation_string_becomes_float():
    assert from_dict(TrainParams, {"learning_rate": "1e-4"}).learning_rate == pytest.approx(1e-4)


def test_replace_overrides_one_field_only():
    p = replace(Params(), train={"epochs": 1.0})
    assert p.train.epochs == 1.0 and p.train.batch_size == Params().train.batch_size


def test_invalid_values_fail_in_post_init():
    with pytest.raises(ConfigError):
        TrainParams(batch_size=0)


def test_files_the_stages_write_cannot_be_the_data_they_read(tmp_path):
    """What the stages derive (the splits, the dev split, the augmented rows) lives in the run folder,
    outside the labelled data folder, whatever the settings: no setting can point a write at a file
    the stages read. (It used to take data.dev_file and augment.output_file, checked here against the
    labelled files.)"""
    from finsent.paths import Layout

    layout = Layout.of(tmp_path, Params())
    for run in (layout.pipeline, layout.new_run()):
        written = [run.prepared.train, run.prepared.eval, run.prepared.dev, run.augmented_train, run.validation, run.model_dir]
        for path in written:
            assert layout.data_dir not in path.parents and layout.shipped_dir not in path.parents
        assert len(set(written)) == len(written)


def test_the_shipped_params_file_is_the_typed_defaults():
    """Each default is written once, in config.py; params.yaml spells out the same values for users."""
    assert load_params(Path(__file__).resolve().parents[2] / "params.yaml") == Params()


def test_schedule_params_reject_a_bad_cron():
    with pytest.raises(ConfigError, match="monitor_cron"):
        from_dict(ScheduleParams, {"monitor_cron": "hourly"})
