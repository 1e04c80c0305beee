"""The dagster.yaml `customer360 dev` writes: run queue and pool limits a real instance reads."""

import dagster as dg
import pytest
import yaml

from customer360.cli.instance import (
    MAX_RUNS_ENV,
    default_max_concurrent_runs,
    write_instance_config,
)


def test_two_runs_at_most_on_a_two_core_machine(monkeypatch):
    monkeypatch.delenv(MAX_RUNS_ENV, raising=False)
    assert default_max_concurrent_runs(cpu_count=2) == 2
    assert default_max_concurrent_runs(cpu_count=1) == 1
    assert default_max_concurrent_runs(cpu_count=32) == 4


def test_the_environment_overrides_and_bad_values_are_named(monkeypatch):
    monkeypatch.setenv(MAX_RUNS_ENV, "3")
    assert default_max_concurrent_runs(cpu_count=2) == 3
    monkeypatch.setenv(MAX_RUNS_ENV, "many")
    with pytest.raises(ValueError, match="C360_MAX_CONCURRENT_RUNS='many'"):
        default_max_concurrent_runs()


def test_a_real_instance_reads_the_limits(tmp_path, monkeypatch):
    monkeypatch.delenv(MAX_RUNS_ENV, raising=False)
    write_instance_config(tmp_path, max_concurrent_runs=2)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        config = instance.get_concurrency_config()
        assert config.run_queue_config.max_concurrent_runs == 2
        assert config.pool_config.default_pool_limit == 1
        assert instance.event_log_storage.supports_global_concurrency_limits


def test_user_settings_are_kept(tmp_path):
    path = tmp_path / "dagster.yaml"
    path.write_text("concurrency:\n  runs:\n    max_concurrent_runs: 7\nretention: {}\n")
    write_instance_config(tmp_path, max_concurrent_runs=2)
    written = yaml.safe_load(path.read_text())
    assert written["concurrency"]["runs"]["max_concurrent_runs"] == 7
    assert written["concurrency"]["pools"]["default_limit"] == 1
    assert written["telemetry"] == {"enabled": False}
    assert "retention" in written


def test_a_broken_file_is_named(tmp_path):
    (tmp_path / "dagster.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match=r"dagster\.yaml: expected a YAML mapping"):
        write_instance_config(tmp_path)
