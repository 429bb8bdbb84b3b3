"""The build context .dockerignore leaves is enough to build the package the image installs."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
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


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three wheels, built from exactly the files the image's build context holds."""
    root = tmp_path_factory.mktemp("build-context")
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    rules = ignore_rules()
    context = [path for path in tracked if in_context(path, rules)]
    assert "Dockerfile" not in context and not any(p.startswith("tests/") for p in context)
    assert "service/seseragi/cli.py" in context
    assert "requirements/service.lock" in context  # the venv stages install it by hash
    for path in context:
        (root / "context" / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / path, root / "context" / path)
    context_dir = root / "context"
    projects = [context_dir / "contract", context_dir / "clients" / "python", context_dir]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--quiet", "--wheel-dir", str(root / "wheels"), *map(str, projects)],
        check=True,
        timeout=300,
    )
    return root / "wheels"


def test_context_builds_the_package_and_leaves_the_rest_out(wheels: Path) -> None:
    (wheel,) = wheels.glob("seseragi-0*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "seseragi/cli.py" in names and not any(n.startswith("seseragi_c") for n in names)
    assert "seseragi/edge/envoy.yaml.j2" in names
    (contract,) = wheels.glob("seseragi_contract-*.whl")
    contract_names = zipfile.ZipFile(contract).namelist()
    assert "seseragi_contract/v1/generation_pb2.py" in contract_names
    assert "seseragi_contract/v1/seseragi.binpb" in contract_names
    (client,) = wheels.glob("seseragi_client-*.whl")
    assert "seseragi_client/__init__.py" in zipfile.ZipFile(client).namelist()


def test_the_installed_package_renders_envoys_config_away_from_the_checkout(
    wheels: Path, tmp_path: Path
) -> None:
    """A plain (not editable) install reads the template and the descriptor set as package
    data; the dependencies come from this venv's site-packages, after the install's own."""
    venv.create(tmp_path / "venv")
    python, seseragi = tmp_path / "venv" / "bin" / "python", tmp_path / "venv" / "bin" / "seseragi"
    site = Path(sysconfig.get_path("purelib", vars={"base": str(tmp_path / "venv")}))
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps"]
        + ["--no-index", "--quiet", "--disable-pip-version-check", *map(str, wheels.glob("*"))],
        check=True,
        timeout=300,
    )
    (site / "dependencies.pth").write_text(f"{sysconfig.get_path('purelib')}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(SESERAGI_EDGE_SECRET="installed", SESERAGI_CACHE_DIR=str(tmp_path / "cache"))
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import seseragi, seseragi_contract as c; print(seseragi.__file__, c.__file__)",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(path.startswith(f"{site}/") for path in where), where
    out = tmp_path / "envoy"
    rendered = subprocess.run(
        [str(seseragi), "envoy", "render", "--out", str(out)],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stdout.strip() == str(out / "envoy.yaml")
    descriptor = REPO_ROOT / "contract" / "seseragi_contract" / "v1" / "seseragi.binpb"
    assert (out / "seseragi.binpb").read_bytes() == descriptor.read_bytes()
    assert f'proto_descriptor: "{out / "seseragi.binpb"}"' in (out / "envoy.yaml").read_text()
    assert list(elsewhere.iterdir()) == []
