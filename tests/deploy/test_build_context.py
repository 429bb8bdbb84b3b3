"""The build context .dockerignore leaves is enough to build the package the image installs."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from tests.servers import REPO_ROOT

pytestmark = pytest.mark.unit


def ignore_rules() -> list[tuple[bool, str]]:
    """(excluded, pattern) in file order; Docker lets the last matching rule decide."""
    rules = []
    for raw in (REPO_ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            rules.append((not negated, line.lstrip("!").rstrip("/")))
    return rules


def in_context(path: str, rules: list[tuple[bool, str]]) -> bool:
    candidates = [path, *(str(parent) for parent in PurePosixPath(path).parents)][:-1]
    excluded = False
    for exclude, pattern in rules:
        if any(fnmatch.fnmatchcase(candidate, pattern) for candidate in candidates):
            excluded = exclude
    return not excluded


def test_context_builds_the_package_and_leaves_the_rest_out(tmp_path: Path) -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    rules = ignore_rules()
    context = [path for path in tracked if in_context(path, rules)]
    assert "Dockerfile" not in context and not any(p.startswith("tests/") for p in context)
    assert "service/seseragi/cli.py" in context
    assert "requirements/service.lock" in context  # the venv stages install it by hash
    for path in context:
        (tmp_path / "context" / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / path, tmp_path / "context" / path)
    context_dir = tmp_path / "context"
    projects = [context_dir / "contract", context_dir / "clients" / "python", context_dir]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--quiet", "--wheel-dir", str(tmp_path / "wheels"), *map(str, projects)],
        check=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "wheels").glob("seseragi-0*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "seseragi/cli.py" in names and not any(n.startswith("seseragi_c") for n in names)
    (contract,) = (tmp_path / "wheels").glob("seseragi_contract-*.whl")
    assert "seseragi_contract/v1/generation_pb2.py" in zipfile.ZipFile(contract).namelist()
    (client,) = (tmp_path / "wheels").glob("seseragi_client-*.whl")
    assert "seseragi_client/__init__.py" in zipfile.ZipFile(client).namelist()
