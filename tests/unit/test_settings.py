"""Worker settings parsed from their declared types: arguments, then ``SHOAL_*``, then
defaults, and a bad value is one line naming its variable and its flag."""

from __future__ import annotations

import pytest

from shoal import WorkerSettings
from shoal.cli import build_parser
from shoal.cli.options import worker_settings
from shoal.core.errors import ConfigurationError


def test_variables_are_parsed_by_the_declared_types() -> None:
    settings = WorkerSettings.from_env(
        {
            "SHOAL_QUEUES": "emails, bulk,",
            "SHOAL_CONCURRENCY": "4",
            "SHOAL_PREFETCH": "0",
            "SHOAL_SHUTDOWN_TIMEOUT": "2.5",
            "SHOAL_MAX_TASKS": "100",
            "SHOAL_HEALTH_FILE": "/tmp/alive",
        }
    )
    assert settings.queues == ("emails", "bulk")
    assert (settings.concurrency, settings.prefetch, settings.max_tasks) == (4, 0, 100)
    assert settings.shutdown_timeout == 2.5 and settings.health_file == "/tmp/alive"
    assert settings.lease_seconds == 30.0 and settings.max_rss_mb is None  # defaults


def test_arguments_beat_variables_and_empty_values_count_as_unset() -> None:
    environ = {"SHOAL_CONCURRENCY": "4", "SHOAL_PREFETCH": "", "SHOAL_HEALTH_FILE": ""}
    settings = WorkerSettings.from_env(environ, concurrency="7", poll_interval=None)
    assert (settings.concurrency, settings.prefetch, settings.health_file) == (7, None, None)
    assert settings.poll_interval == 1.0


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SHOAL_CONCURRENCY": "0"}, "SHOAL_CONCURRENCY / --concurrency: input should be greater"),
        ({"SHOAL_MAX_TASKS": "1.5"}, "SHOAL_MAX_TASKS / --max-tasks: input should be a valid int"),
        ({"SHOAL_PREFETCH": "-1"}, "SHOAL_PREFETCH / --prefetch: input should be greater"),
        ({"SHOAL_LEASE_SECONDS": "soon"}, "SHOAL_LEASE_SECONDS / --lease-seconds: input should"),
        ({"SHOAL_POLL_INTERVAL": "0"}, "SHOAL_POLL_INTERVAL / --poll-interval: input should"),
    ],
)
def test_a_bad_value_names_its_variable_and_flag(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        WorkerSettings.from_env(environ)
    assert message in str(caught.value)
    assert repr(next(iter(environ.values()))) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_settings_built_in_code_are_checked_and_frozen() -> None:
    with pytest.raises(ConfigurationError, match=r"--concurrency: input should be greater"):
        WorkerSettings(concurrency=0)
    with pytest.raises(ConfigurationError, match="unknown setting concurency"):
        WorkerSettings(concurency=3)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="unknown setting"):
        WorkerSettings.from_env({}, concurency=3)
    settings = WorkerSettings()
    with pytest.raises(ValueError, match="frozen"):
        settings.concurrency = 2  # type: ignore[misc]


def test_the_reported_host_is_a_setting_that_honours_kubernetes_pod_name() -> None:
    assert WorkerSettings.from_env({}).host is None  # the worker falls back to the hostname
    assert WorkerSettings.from_env({"POD_NAME": "mailers-7d9-x2"}).host == "mailers-7d9-x2"
    both = {"POD_NAME": "mailers-7d9-x2", "SHOAL_HOST": "worker-a"}
    assert WorkerSettings.from_env(both).host == "worker-a"


def test_worker_flags_are_built_from_the_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_CONCURRENCY", "3")
    monkeypatch.setenv("SHOAL_REAP_INTERVAL", "2")
    monkeypatch.setenv("COLUMNS", "10000")  # one line per flag: no wrapping inside a word
    arguments = build_parser().parse_args(
        ["worker", "app:app", "--queues", "a,b", "--queues", "c", "--reap-interval", "9"]
    )
    settings = worker_settings(arguments)
    assert settings.queues == ("a", "b", "c")
    assert (settings.concurrency, settings.reap_interval) == (3, 9.0)
    worker = build_parser()._subparsers._group_actions[0].choices["worker"]  # type: ignore[union-attr,index]
    help_text = " ".join(worker.format_help().split())
    for name, spec in WorkerSettings.model_fields.items():
        assert WorkerSettings.env_name(name) in help_text
        assert " ".join((spec.description or "").split()) in help_text
    assert "[default: automatic; env: SHOAL_PREFETCH]" in help_text


def test_the_worker_reports_its_host_setting() -> None:
    from shoal import App, Worker

    app = App("memory://")
    assert Worker(app, WorkerSettings(host="mailers-7d9-x2")).host == "mailers-7d9-x2"
    assert Worker(app).host  # the hostname
