"""docs/settings.md is what the settings classes generate, so it names every setting."""

from __future__ import annotations

import re

import pytest

from seseragi.settings import Settings
from seseragi.settings.reference import markdown
from tests.servers import REPO_ROOT

pytestmark = pytest.mark.unit

REFERENCE = REPO_ROOT / "docs" / "settings.md"


def test_the_committed_reference_is_current() -> None:
    assert REFERENCE.read_text() == markdown(), "docs/settings.md is stale: run make settings-doc"


def test_the_reference_lists_every_setting_once() -> None:
    documented = re.findall(r"^\| `SESERAGI_([A-Z_]+)` \|", markdown(), flags=re.MULTILINE)
    assert sorted(documented) == sorted(name.upper() for name in Settings.model_fields)


def test_the_reference_does_not_depend_on_this_machine() -> None:
    assert "`~/.cache/seseragi`" in markdown()
    assert str(REPO_ROOT) not in markdown()


def test_the_readme_points_to_the_reference() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert "](docs/settings.md)" in readme
