"""What mypy sees: a handle's ``result()`` has the handler's return type (awaited for an
``async def``), through push, configure and push_many; a wrong argument is still caught.
Runs mypy itself (strict) on a small program."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mypy import api

PROGRAM = """
from typing import assert_type

from shoal import App, Context, TaskHandle

app = App("memory://", keep_result=60)


@app.task
async def add(a: int, b: int) -> int:
    return a + b


@app.task
def shout(context: Context, text: str) -> str:
    return text.upper()


async def main() -> None:
    handle = await add.push(1, 2)
    assert_type(handle, TaskHandle[int])
    assert_type(await handle.result(timeout=1), int)
    assert_type(await (await shout.push("x")).result(), str)
    assert_type(await add.configure(delay=1).push(a=1, b=2), TaskHandle[int])
    assert_type(await add.push_many([{"a": 1, "b": 2}]), list[TaskHandle[int]])
    await add.push("one", 2)  # the error mypy must report
"""


def test_result_is_typed_by_the_handlers_return_annotation(tmp_path: Path) -> None:
    program = tmp_path / "program.py"
    program.write_text(textwrap.dedent(PROGRAM))
    out, err, status = api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(program)]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1, out + err  # every assert_type held
    line = 1 + textwrap.dedent(PROGRAM).splitlines().index(
        '    await add.push("one", 2)  # the error mypy must report'
    )
    assert 'No overload variant of "push"' in errors[0] and f":{line}:" in errors[0]
    assert status == 1
