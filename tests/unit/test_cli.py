"""`seseragi serve --help` and `worker --help` document every setting; `--version` answers."""

from __future__ import annotations

import re
from importlib import metadata

import pytest
from pydantic_settings import BaseSettings

from seseragi.cli import main
from seseragi.settings import ServeSettings, WorkerSettings

pytestmark = pytest.mark.unit


def help_entries(command: str, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """Each option's help text, whitespace collapsed, by its first flag."""
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out.split("\noptions:\n", 1)[1]
    entries = re.split(r"\n(?=  -)", text)
    return {entry.split()[0].rstrip(","): " ".join(entry.split()) for entry in entries}


@pytest.mark.parametrize(
    ("command", "settings_class"), [("serve", ServeSettings), ("worker", WorkerSettings)]
)
def test_help_lists_every_setting_with_its_variable_default_and_meaning(
    command: str,
    settings_class: type[BaseSettings],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    entries = help_entries(command, capsys)
    for name, field in settings_class.model_fields.items():
        entry = entries[f"--{name.replace('_', '-')}"]
        assert f"[env: SESERAGI_{name.upper()}]" in entry
        assert "(default: " in entry
        assert field.description
        assert " ".join(field.description.split()) in entry
    assert len(entries) == len(settings_class.model_fields) + 1  # and -h


def test_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    entries = help_entries("serve", capsys)
    assert "(default: 50051)" in entries["--port"]
    assert "(default: smollm2-135m-instruct)" in entries["--model"]


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"seseragi {metadata.version('seseragi')}\n"
