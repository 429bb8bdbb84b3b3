"""The README stays true: CI runs its test command (its settings: tests/unit/settings)."""

from __future__ import annotations

import pytest

from tests.servers import REPO_ROOT

pytestmark = pytest.mark.unit


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert "make test" in readme
    assert "\nmake test\n" in (REPO_ROOT / ".ci" / "run").read_text()
