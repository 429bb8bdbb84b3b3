"""The README stays true: its settings table is complete, and CI runs its test command."""

from __future__ import annotations

import re

import pytest

from seseragi.config import Settings
from tests.servers import REPO_ROOT

pytestmark = pytest.mark.unit


def test_settings_table_lists_every_setting() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `SESERAGI_([A-Z_]+)` \|", readme, flags=re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert "make test" in readme
    assert "\nmake test\n" in (REPO_ROOT / ".ci" / "run").read_text()
