from __future__ import annotations

import pytest

from freshrank.config import ConfigError, load_config


def test_defaults_are_valid_and_documented_values():
    cfg = load_config(env={})
    assert cfg.kafka.bootstrap == "localhost:9092"
    assert cfg.job.click_window_ms == 30 * 60_000 and cfg.job.purchase_window_ms == 24 * 3_600_000
    assert cfg.kafka.topics.compacted() == {"freshrank.features.user", "freshrank.features.item",
                                            "freshrank.features.query_item", "freshrank.model.deltas"}


def test_toml_then_environment_override(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[job]\nclick_window_ms = 60000\nmodel_name = "search"\n[kafka]\nbootstrap = "k:1"\n')
    cfg = load_config(path, env={"FRESHRANK_JOB__MODEL_NAME": "recs"})
    assert cfg.job.click_window_ms == 60_000
    assert cfg.job.model_name == "recs"  # the environment wins over the file
    assert cfg.kafka.bootstrap == "k:1"


@pytest.mark.parametrize("env, message", [
    ({"FRESHRANK_JOB__PARALLELISM": "0"}, "job.parallelism"),
    ({"FRESHRANK_JOB__PARALLELISM": "two"}, "job.parallelism: not a int"),
    ({"FRESHRANK_STACK__KAFKA_PORT": "70000"}, "stack.kafka_port"),
    ({"FRESHRANK_JOB__STATE_BACKEND": "memory"}, "job.state_backend"),
    ({"FRESHRANK_JOB__PURCHASE_WINDOW_MS": "1000"}, "job.purchase_window_ms"),
    ({"FRESHRANK_JOB__CLICK_WINDW_MS": "1"}, "FRESHRANK_JOB__CLICK_WINDW_MS"),
])
def test_bad_values_name_the_setting(env, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(env=env)


def test_unknown_keys_in_a_file_are_rejected(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[job]\nclick_windw_ms = 1\n")
    with pytest.raises(ConfigError, match="click_windw_ms"):
        load_config(path, env={})


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[job\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, env={})


def test_optional_settings_from_the_environment():
    assert load_config(env={"FRESHRANK_TRAINER__NUM_THREADS": "1"}).trainer.num_threads == 1
    assert load_config(env={"FRESHRANK_TRAINER__NUM_THREADS": "none"}).trainer.num_threads is None


def test_the_feature_stage_alone_runs_on_its_own_state_backend():
    job = load_config(env={}).job
    assert (job.state_backend, job.features_state_backend) == ("rocksdb", "hashmap")
    assert job.job_state_backend() == "rocksdb"  # stages = all: the trainer's backend for the whole job
    features = load_config(env={"FRESHRANK_JOB__STAGES": "features"}).job
    assert features.job_state_backend() == "hashmap"
    assert load_config(env={"FRESHRANK_JOB__STAGES": "training"}).job.job_state_backend() == "rocksdb"
    same = load_config(env={"FRESHRANK_JOB__STAGES": "features", "FRESHRANK_JOB__FEATURES_STATE_BACKEND": ""}).job
    assert same.job_state_backend() == "rocksdb"  # '' follows state_backend


def test_a_bad_feature_stage_backend_names_the_setting():
    with pytest.raises(ConfigError, match=r"job\.features_state_backend"):
        load_config(env={"FRESHRANK_JOB__FEATURES_STATE_BACKEND": "memory"})


def test_object_reuse_only_for_the_feature_stage_alone():
    assert load_config(env={}).job.job_object_reuse() is False
    assert load_config(env={"FRESHRANK_JOB__STAGES": "training"}).job.job_object_reuse() is False
    assert load_config(env={"FRESHRANK_JOB__STAGES": "features"}).job.job_object_reuse() is True
    assert load_config(env={"FRESHRANK_JOB__STAGES": "features",
                            "FRESHRANK_JOB__FEATURES_OBJECT_REUSE": "false"}).job.job_object_reuse() is False
