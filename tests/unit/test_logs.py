"""The CLI's log lines: one event is one line, whoever logs it; tracebacks at debug only."""

from __future__ import annotations

import json
import logging

import pytest

from shoal.cli import logs


def log_a_driver_warning() -> None:
    try:
        raise ConnectionError("connection refused\nDETAIL: the server is starting up")
    except ConnectionError:
        logging.getLogger("asyncpg.pool").warning("Failed to restore the pool", exc_info=True)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_an_exception_is_one_line_unless_debugging(
    log_format: str, root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure(log_format, "info")
    log_a_driver_warning()
    [line] = capsys.readouterr().err.splitlines()
    assert "Traceback" not in line
    summary = "ConnectionError: connection refused | DETAIL: the server is starting up"
    if log_format == "json":
        assert json.loads(line)["exception"] == summary
    else:
        assert line.endswith(f"asyncpg.pool: Failed to restore the pool: {summary}")

    logs.configure(log_format, "debug")
    log_a_driver_warning()
    assert "Traceback (most recent call last)" in capsys.readouterr().err
