"""The CLI tells the truth: the README's configuration table is the one generated from the
parser, global options work before or after any command, every command and flag has help,
and the version and the public names are what they say."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import shoal
from shoal.backends import OnConflict
from shoal.cli import build_parser, reference
from shoal.core.settings import WorkerSettings
from shoal.core.version import VERSION

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_readme_configuration_table_is_generated_from_the_parser() -> None:
    start = README.index(reference.HEADER)
    end = README.index("\n\n", start)
    assert README[start:end] == reference.markdown_table(build_parser()), (
        "the README's table is stale: paste the output of `shoal config --markdown`"
    )


def test_the_table_states_declared_defaults_not_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOAL_WORKERS", "7")
    monkeypatch.setenv("SHOAL_LOG_FORMAT", "json")
    table = reference.markdown_table(build_parser())
    assert "| `--workers` | `SHOAL_WORKERS` | 1 |" in table
    assert "| `--log-format` | `SHOAL_LOG_FORMAT` | text |" in table
    assert "(any command; before or after it)" in table


COMMANDS = [
    ["worker", "tasks:app"],
    ["queues"],
    ["workers"],
    ["jobs", "list"],
    ["jobs", "show", "some-id"],
    ["jobs", "purge", "--status", "done"],
    ["migrate"],
    ["check"],
    ["config"],
    ["demo"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_global_options_work_before_or_after_the_command(command: list[str]) -> None:
    parser = build_parser()
    flags = ["--log-format", "json", "--log-level", "debug"]
    for arguments in ([*flags, *command], [*command, *flags]):
        parsed = parser.parse_args(arguments)
        assert (parsed.log_format, parsed.log_level) == ("json", "debug"), arguments
    defaults = parser.parse_args(command)
    assert (defaults.log_format, defaults.log_level) == ("text", "info")
    after_wins = parser.parse_args(["--log-format", "json", *command, "--log-format", "text"])
    assert after_wins.log_format == "text"


def test_global_options_after_the_command_keep_the_environment_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOAL_LOG_FORMAT", "json")
    assert build_parser().parse_args(["jobs", "list"]).log_format == "json"


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    parser = build_parser()
    return [(parser.prog, parser), *((sub.prog, sub) for sub in reference.subparsers(parser))]


@pytest.mark.parametrize(("prog", "parser"), _parsers(), ids=lambda v: str(v))
def test_every_command_and_flag_has_help(prog: str, parser: argparse.ArgumentParser) -> None:
    assert parser.description, f"{prog} has no description"
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                assert choice.help, f"{prog} {choice.dest} has no help in the list"
        elif not isinstance(action, argparse._HelpAction):
            name = "/".join(action.option_strings) or action.dest
            assert action.help and action.help != argparse.SUPPRESS, f"{prog} {name}: no help"


def test_every_command_is_walked() -> None:
    names = {prog for prog, _ in _parsers()}
    assert {"shoal workers", "shoal jobs retry", "shoal jobs purge", "shoal config"} <= names


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"shoal {VERSION}"
    assert VERSION[0].isdigit() and VERSION != "0+unknown"


def test_on_conflict_is_public() -> None:
    assert shoal.OnConflict is OnConflict
    assert "OnConflict" in shoal.__all__


def test_shoal_config_says_what_the_environment_makes_of_each_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOAL_CONCURRENCY", "4")
    monkeypatch.setenv("POD_NAME", "Mailers-7d9")
    rows = {flag: (value, source) for flag, value, source in reference.resolved()}
    assert rows["--concurrency"] == ("4", "SHOAL_CONCURRENCY")
    assert rows["--host"] == ("Mailers-7d9", "POD_NAME")
    assert rows["--prefetch"] == ("automatic", "default")
    assert rows["--queues"] == ("every queue of the app's tasks", "default")
    assert rows["--require-persistence"] == ("false", "default")
    assert set(rows) == {f"--{name.replace('_', '-')}" for name in WorkerSettings.model_fields}
