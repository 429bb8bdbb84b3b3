"""docs/settings.md, written from the settings classes: `python -m seseragi.settings.reference`.

`make settings-doc` runs it; a unit test fails when the committed file differs from its output.
"""

from __future__ import annotations

import json
import sys
import typing
from pathlib import Path

from pydantic.fields import FieldInfo

from seseragi.settings.base import SeseragiSettings
from seseragi.settings.edge import EdgeSettings
from seseragi.settings.engine import EngineSettings
from seseragi.settings.generation import GenerationSettings
from seseragi.settings.jobs import JobsSettings
from seseragi.settings.programs import ServeSettings, WorkerSettings
from seseragi.settings.server import ServerSettings
from seseragi.settings.telemetry import TelemetrySettings

PARTS: tuple[type[SeseragiSettings], ...] = (
    ServerSettings,
    GenerationSettings,
    EngineSettings,
    JobsSettings,
    TelemetrySettings,
    EdgeSettings,
)
PROGRAMS: tuple[tuple[str, type[SeseragiSettings]], ...] = (
    ("seseragi serve", ServeSettings),
    ("seseragi worker", WorkerSettings),
)
EDGE_TOOLS = "`seseragi stack`, `seseragi envoy render`, `seseragi token` (variables only)"

HEADER = """\
# Settings

<!-- Generated from service/seseragi/settings/ by `make settings-doc`; do not edit. -->

Every setting is a `SESERAGI_*` environment variable (a `.env` file works too). The programs that
read a setting also take it as a flag, which wins over the variable:
`seseragi serve --port 50052 --model ./my-model`. `seseragi serve --help` and
`seseragi worker --help` list every flag with its variable and default. A list is written as
JSON: `SESERAGI_METRICS_LATENCY_BUCKETS='[0.1, 1, 10]'`.
"""


def env_name(field: str) -> str:
    prefix = SeseragiSettings.model_config.get("env_prefix", "")
    return f"{prefix}{field}".upper()


def flag_text(name: str, field: FieldInfo) -> str:
    """The flag as `serve --help` shows it; a boolean has a `--no-` twin."""
    flag = name.replace("_", "-")
    return f"`--{flag}`, `--no-{flag}`" if field.annotation is bool else f"`--{flag}`"


def default_text(value: object) -> str:
    """The default as a user would type it; the home directory as `~`, not this machine's."""
    if value is None:
        return "(unset)"
    if value == "":
        return "(empty)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return f"`{json.dumps(list(value))}`"
    if isinstance(value, Path) and value.is_relative_to(Path.home()):
        return f"`~/{value.relative_to(Path.home())}`"
    return f"`{value}`"


def meaning(field: FieldInfo) -> str:
    text = field.description or ""
    choices = typing.get_args(field.annotation) if _is_literal(field.annotation) else ()
    if choices:
        text += " One of " + ", ".join(f"`{choice}`" for choice in choices) + "."
    return text.replace("|", "\\|").strip()


def _is_literal(annotation: object) -> bool:
    return typing.get_origin(annotation) is typing.Literal


def readers(part: type[SeseragiSettings]) -> str:
    programs = [f"`{name}`" for name, program in PROGRAMS if issubclass(program, part)]
    return ", ".join(programs) or EDGE_TOOLS


def section(part: type[SeseragiSettings]) -> str:
    title = part.__name__.removesuffix("Settings")
    module = sys.modules[part.__module__]
    summary = (module.__doc__ or "").strip().splitlines()[0]
    flags = any(issubclass(program, part) for _, program in PROGRAMS)
    lines = [
        f"## {title}",
        "",
        f"{summary} Read by {readers(part)}; defined in"
        f" `service/{part.__module__.replace('.', '/')}.py`.",
        "",
        "| Variable | Flag | Default | Meaning |",
        "| --- | --- | --- | --- |",
    ]
    for name, field in part.model_fields.items():
        flag = flag_text(name, field) if flags else "—"
        lines.append(
            f"| `{env_name(name)}` | {flag} | {default_text(field.default)} | {meaning(field)} |"
        )
    return "\n".join(lines) + "\n"


def markdown() -> str:
    return "\n".join([HEADER, *map(section, PARTS)])


if __name__ == "__main__":
    sys.stdout.write(markdown())
