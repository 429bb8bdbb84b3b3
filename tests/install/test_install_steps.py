"""How `make venv`, `make lock` and the image install: the lock by hash, torch by version and build.

The Makefile's commands are read with `make -n` (nothing runs), for each TORCH choice; the
Dockerfile's from its venv stages.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy import dockerfile
from tests.install import locks
from tests.servers import REPO_ROOT

pytestmark = pytest.mark.unit
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CUDA_INDEX = "https://download.pytorch.org/whl/cu128"


def torch_version() -> str:
    (torch,) = [r for r in locks.requirements() if r.name == "torch"]
    return locks.pinned_version(torch)


def dry_run(tmp_path: Path, *arguments: str) -> list[str]:
    """The commands `make` would run, for a venv that does not exist yet."""
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", f"VENV={tmp_path / 'venv'}", *arguments],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.replace("\\\n", " ").splitlines()


def pip_installs(commands: list[str]) -> list[str]:
    return [c for c in commands if " -m pip install " in c or " -m pip download " in c]


def test_make_venv_installs_the_lock_by_hash_then_the_cpu_torch_then_the_local_packages(
    tmp_path: Path,
) -> None:
    version = torch_version()
    installs = pip_installs(dry_run(tmp_path, "venv"))
    lock, torch, local = installs[1:]
    assert "--require-hashes --no-deps -r requirements/dev.lock" in lock
    # pip's own wheelhouse (find-links) without any index first, then the PyTorch CPU index;
    # its dependencies are in the lock, so PyPI's CUDA build and its libraries never come in.
    offline, online = torch.split(" || ")
    assert offline.endswith(f"--no-deps --no-index torch=={version}+cpu 2>/dev/null")
    assert online.endswith(f"--no-deps --index-url {CPU_INDEX} torch=={version}+cpu")
    assert "--no-deps --no-build-isolation" in local and "-e ./contract" in local
    assert any(command.endswith("-m pip check") for command in dry_run(tmp_path, "venv"))


def test_make_venv_with_torch_cuda_takes_the_cuda_build_and_its_libraries(tmp_path: Path) -> None:
    (torch,) = [c for c in pip_installs(dry_run(tmp_path, "venv", "TORCH=cuda")) if "torch==" in c]
    online = torch.split(" || ")[1]
    assert online.endswith(f"--index-url {CUDA_INDEX} torch=={torch_version()}+cu128")
    assert "--no-deps" not in torch  # nvidia-* come with it from the CUDA index


def test_any_other_torch_choice_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        ["make", "-n", f"VENV={tmp_path / 'venv'}", "TORCH=rocm", "venv"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "TORCH must be cpu or cuda" in result.stderr


def test_make_lock_resolves_against_the_cpu_torch_and_writes_both_locks(tmp_path: Path) -> None:
    commands = dry_run(tmp_path, "lock")
    (download,) = [c for c in commands if " -m pip download " in c]
    assert download.endswith(f"--index-url {CPU_INDEX} torch=={torch_version()}+cpu")
    compiles = [c for c in commands if "pip-compile" in c]
    assert [c.split()[-1] for c in compiles] == ["requirements/service.in", "requirements/dev.in"]
    for command in compiles:
        assert "--generate-hashes" in command and "--find-links build/torch" in command
        assert "--unsafe-package torch" in command and "--no-emit-index-url" in command


@pytest.mark.parametrize(("stage", "build"), [("venv-cpu", "cpu"), ("venv-cuda", "cu128")])
def test_the_image_installs_the_runtime_lock_by_hash_and_torch_by_build(
    stage: str, build: str
) -> None:
    (run,) = [a for kw, a in dockerfile.stages()[stage].instructions if kw == "RUN"]
    steps = [step.strip() for step in run.split("&&")]
    assert steps[1] == "pip install --require-hashes --no-deps -r requirements/service.lock"
    assert re.search(rf"--index-url \S+ torch=={re.escape(torch_version())}\+{build}$", steps[2])
    assert ("--no-deps" in steps[2]) == (build == "cpu")
    assert steps[3].startswith("pip install --no-deps --no-build-isolation /src/contract")
    assert steps[4] == "pip check"


def test_torch_is_one_version_in_pyproject_the_lock_inputs_and_the_makefile() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    pin = re.search(r"^TORCH_VERSION := (\S+)$", makefile, re.M)
    assert pin is not None and pin[1] == torch_version()
    for name in ("service.in", "dev.in"):
        assert f"torch=={torch_version()}+cpu" in (REPO_ROOT / "requirements" / name).read_text()
