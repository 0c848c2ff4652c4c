"""A small Dockerfile parser for the tests: stages, instructions, exec forms, ARG defaults.

Enough for the rules ``tests/unit/test_dockerfile.py`` checks and for running the command an
image runs (``tests/e2e/test_image_command.py``); not a general parser (no heredocs, no
escape directive).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
EXAMPLE = ROOT / "examples" / "Dockerfile"


@dataclass
class Instruction:
    keyword: str
    argument: str

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form ENTRYPOINT/CMD/RUN, or None for the shell form."""
        if not self.argument.startswith("["):
            return None
        parsed = json.loads(self.argument)
        assert isinstance(parsed, list) and all(isinstance(x, str) for x in parsed)
        return parsed


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def resolve(self, image: str) -> str:
        """A FROM argument with the global ARGs' defaults substituted."""
        return re.sub(r"\$\{?(\w+)\}?", lambda m: self.global_args.get(m[1], m[0]), image)

    def lineage(self, stage: Stage) -> list[Stage]:
        """The stage and the stages it is built FROM, nearest first."""
        chain = [stage]
        while parent := next((s for s in self.stages if s.name == chain[-1].base), None):
            chain.append(parent)
        return chain


def parse(path: Path) -> Dockerfile:
    """Instructions with continuation lines joined and comments dropped; stages by FROM."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, f"{path}: a continuation line ends the file"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, argument = line.partition(" ")
        instruction = Instruction(keyword.upper(), argument.strip())
        if instruction.keyword == "FROM":
            parts = instruction.argument.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif not stages:
            assert instruction.keyword == "ARG", f"{path}: {line!r} before the first FROM"
            arg_name, _, default = instruction.argument.partition("=")
            global_args[arg_name] = default
        else:
            stages[-1].instructions.append(instruction)
    return Dockerfile(global_args, stages)
