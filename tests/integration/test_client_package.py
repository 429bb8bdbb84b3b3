"""The client installs on its own: a fresh venv holding seseragi-client and its declared
dependencies, without the service or torch, calls a running server.

Offline by construction: the two wheels are built from this checkout, and the venv sees the
dependencies only as the exact files of the dev venv's grpcio, grpcio-status and protobuf (and
what they in turn require), so `pip install --no-index` fails if the client declares anything more.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.servers import REPO_ROOT, ServerThread

pytestmark = pytest.mark.integration

IGNORED = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
ALLOWED = ("grpcio", "grpcio-status", "protobuf")  # the client's, besides the contract

CALL = """
import json, sys
from seseragi_client import Client, SeseragiError

with Client(sys.argv[1], timeout=60) as client:
    seen = [client.model_info().model_id]
    seen.append(client.generate("The capital of France is", max_new_tokens=4, temperature=0).text)
    try:
        client.generate("Hi", temperature=7)
    except SeseragiError as error:
        seen.append(f"{error.code.name} {error.reason}")
print(json.dumps(seen))
"""


def closure(names: tuple[str, ...]) -> set[str]:
    """The installed distributions `names` need, themselves included (markers evaluated here)."""
    found: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop().lower()
        if name in found:
            continue
        found.add(name)
        for spec in metadata.requires(name) or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return found


def link_distribution(name: str, into: Path) -> None:
    """Mirror one installed distribution's files (code and dist-info) into `into` as symlinks."""
    dist = metadata.distribution(name)
    for file in dist.files or []:
        source = Path(str(dist.locate_file(file))).resolve()
        if ".." in file.parts or not source.is_file():
            continue  # console scripts and data outside site-packages
        target = into / file
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(source)


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("client-venv")
    wheels, deps, env = root / "wheels", root / "deps", root / "venv"
    sources = [root / "src" / "contract", root / "src" / "client"]  # setuptools builds in place
    shutil.copytree(REPO_ROOT / "contract", sources[0], ignore=IGNORED)
    shutil.copytree(REPO_ROOT / "clients" / "python", sources[1], ignore=IGNORED)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--quiet", "--wheel-dir", str(wheels), *map(str, sources)],
        check=True,
        timeout=300,
    )
    for name in closure(ALLOWED):
        link_distribution(name, deps)
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "client-deps.pth").write_text(f"{deps}\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-index", "--find-links", str(wheels)]
        + ["--quiet", "--disable-pip-version-check", "seseragi-client"],
        check=True,
        timeout=300,
    )
    return python


def test_the_client_alone_calls_a_running_server(client_venv: Path, server: ServerThread) -> None:
    result = subprocess.run(
        [str(client_venv), "-c", CALL, server.target],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    model_id, text, error = json.loads(result.stdout)
    assert model_id == "smollm2-135m-instruct"
    assert "Paris" in text
    assert error == "INVALID_ARGUMENT OUT_OF_RANGE"


def test_the_client_venv_holds_no_service_and_no_torch(client_venv: Path) -> None:
    installed = subprocess.run(
        [str(client_venv), "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = {line.split("==")[0].lower() for line in installed.splitlines()}
    assert {"seseragi-client", "seseragi-contract", *ALLOWED} <= names
    assert not names & {"seseragi", "torch", "transformers"}
    for module in ("seseragi", "torch"):
        probe = subprocess.run([str(client_venv), "-c", f"import {module}"], capture_output=True)
        assert probe.returncode != 0, module
