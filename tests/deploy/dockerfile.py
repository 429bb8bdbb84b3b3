"""Read the Dockerfile the way `docker build --target` would, so tests cannot drift from it."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"


@dataclass
class Stage:
    name: str
    parent: str  # a stage name or an image reference
    instructions: list[tuple[str, str]] = field(default_factory=list)


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) pairs, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    pairs = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        pairs.append((keyword.upper(), arguments.strip()))
    return pairs


def stages(path: Path = DOCKERFILE) -> dict[str, Stage]:
    found: dict[str, Stage] = {}
    current: Stage | None = None
    for keyword, arguments in instructions(path.read_text()):
        if keyword == "FROM":
            words = arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(found))
            current = found[name] = Stage(name, words[0])
        elif current is not None:
            current.instructions.append((keyword, arguments))
    return found


def chain(target: str, path: Path = DOCKERFILE) -> list[Stage]:
    """The stages an image built with --target inherits from, base first."""
    known = stages(path)
    lineage = [known[target]]
    while lineage[-1].parent in known:
        lineage.append(known[lineage[-1].parent])
    return lineage[::-1]


def last_stage(path: Path = DOCKERFILE) -> str:
    return list(stages(path))[-1]


def values(target: str, keyword: str) -> list[str]:
    return [args for stage in chain(target) for kw, args in stage.instructions if kw == keyword]


def env(target: str) -> dict[str, str]:
    """Every ENV the target's image carries (later stages override earlier ones)."""
    result: dict[str, str] = {}
    for arguments in values(target, "ENV"):
        for pair in shlex.split(arguments):
            key, _, value = pair.partition("=")
            result[key] = value
    return result


def exec_form(target: str, keyword: str) -> list[str]:
    """The last ENTRYPOINT or CMD, which must be in exec (JSON) form."""
    parsed = json.loads(values(target, keyword)[-1])
    assert isinstance(parsed, list)
    return [str(word) for word in parsed]


def healthcheck(target: str) -> tuple[dict[str, str], list[str]]:
    """(options such as interval, the exec-form command) of the last HEALTHCHECK."""
    options, _, command = values(target, "HEALTHCHECK")[-1].partition("CMD ")
    flags = dict(option.removeprefix("--").split("=", 1) for option in options.split())
    parsed = json.loads(command)
    return flags, [str(word) for word in parsed]
