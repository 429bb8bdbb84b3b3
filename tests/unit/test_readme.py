"""The docs stay true: the settings table in docs/operations.md is complete, and CI runs the
README's test command."""

from __future__ import annotations

import re

import pytest

from seseragi.config import Settings
from tests.servers import REPO_ROOT

pytestmark = pytest.mark.unit


def test_settings_table_lists_every_setting() -> None:
    operations = (REPO_ROOT / "docs" / "operations.md").read_text()
    documented = set(re.findall(r"^\| `SESERAGI_([A-Z_]+)` \|", operations, flags=re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert "make test" in readme
    assert "\nmake test\n" in (REPO_ROOT / ".ci" / "run").read_text()
