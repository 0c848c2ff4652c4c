"""The operator's settings: a flag for every field, each with its ``SHOAL_OPERATOR_*`` twin
shown in ``--help``; and its logs in the workers' JSON lines."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from shoal.cli import logs
from shoal.core.errors import ConfigurationError
from shoal_operator.__main__ import LOG_CONTEXT, build_parser, main
from shoal_operator.settings import OperatorSettings


def test_every_flag_has_its_environment_twin_in_the_help(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "10000")
    help_text = build_parser().format_help().split("options:")[1]
    entries = [" ".join(entry.split()) for entry in re.split(r"\n\s+(?=--)", help_text)]
    for name, spec in OperatorSettings.model_fields.items():
        [entry] = [e for e in entries if e.split()[0] == f"--{name.replace('_', '-')}"]
        assert f"; env: SHOAL_OPERATOR_{name.upper()}]" in entry
        assert " ".join((spec.description or "").split()) in entry


def test_flags_beat_variables_which_beat_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    from shoal.cli.options import settings_from

    monkeypatch.setenv("SHOAL_OPERATOR_METRICS_PORT", "9100")
    monkeypatch.setenv("SHOAL_OPERATOR_NAMESPACE", "team-a,team-b")
    monkeypatch.setenv("SHOAL_OPERATOR_LOG_FORMAT", "json")
    arguments = build_parser().parse_args(["--metrics-port", "0", "--verbose"])
    settings = settings_from(arguments, OperatorSettings)
    assert settings.metrics_port == 0 and settings.verbose
    assert settings.namespace == ("team-a", "team-b") and settings.log_format == "json"
    assert settings.liveness == "http://0.0.0.0:8081/healthz"
    repeated = build_parser().parse_args(["--namespace", "a", "--namespace", "b"])
    assert settings_from(repeated, OperatorSettings).namespace == ("a", "b")


def test_a_bad_value_is_one_line_naming_the_variable_and_the_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigurationError, match="SHOAL_OPERATOR_METRICS_PORT / --metrics-port"):
        OperatorSettings.from_env({"SHOAL_OPERATOR_METRICS_PORT": "70000"})
    monkeypatch.setenv("SHOAL_OPERATOR_LOG_FORMAT", "yaml")
    assert main([]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "SHOAL_OPERATOR_LOG_FORMAT / --log-format" in error


def test_json_logs_are_the_workers_with_the_object_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logs.configure("json", "info", context=LOG_CONTEXT)
        reference = {"kind": "WorkerPool", "namespace": "prod", "name": "mailers"}
        logging.getLogger("kopf.objects").info("scaled", extra={"k8s_ref": reference})
    finally:
        root.handlers[:], root.level = handlers, level
    line = json.loads(capsys.readouterr().err.splitlines()[-1])
    assert line["message"] == "scaled" and line["level"] == "info"
    assert line["k8s_ref"] == reference


def test_the_readme_names_every_operator_flag() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    for name in OperatorSettings.model_fields:
        assert f"`{OperatorSettings.flag_name(name)}`" in readme, name
