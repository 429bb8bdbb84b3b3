"""The Dockerfile's promises, read from the file: targets, user, signals, health check, lint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy import dockerfile
from tests.servers import REPO_ROOT

pytestmark = pytest.mark.unit
TARGETS = ("cpu", "cuda")


def test_cpu_is_the_default_target_and_both_share_the_slim_runtime() -> None:
    assert dockerfile.last_stage() == "cpu"
    for target in TARGETS:
        names = [stage.name for stage in dockerfile.chain(target)]
        assert names == ["base", "runtime", target]
    assert dockerfile.stages()["base"].parent == "${PYTHON_IMAGE}"
    assert "ARG PYTHON_IMAGE=python:3.11." in (REPO_ROOT / "Dockerfile").read_text()


@pytest.mark.parametrize("target", TARGETS)
def test_runs_seseragi_serve_as_a_non_root_user_in_exec_form(target: str) -> None:
    assert dockerfile.exec_form(target, "ENTRYPOINT") == ["seseragi"]
    assert dockerfile.exec_form(target, "CMD") == ["serve"]
    assert dockerfile.values(target, "USER")[-1] == "10001:10001"  # the seseragi user
    assert dockerfile.values(target, "STOPSIGNAL") == ["SIGTERM"]
    assert dockerfile.env(target)["SESERAGI_HOST"] == "0.0.0.0"


@pytest.mark.parametrize("target", TARGETS)
def test_health_check_asks_the_grpc_health_service(target: str) -> None:
    options, command = dockerfile.healthcheck(target)
    assert command == ["seseragi", "health", "--service", "seseragi.v1.GenerationService"]
    assert "curl" not in " ".join(command)
    assert options["start-period"].endswith("s") and int(options["start-period"][:-1]) >= 60


def test_cuda_quantizes_to_nf4_on_a_cuda_torch_and_cpu_uses_the_cpu_index() -> None:
    cuda, cpu = dockerfile.env("cuda"), dockerfile.env("cpu")
    assert (cuda["SESERAGI_DEVICE"], cuda["SESERAGI_QUANTIZATION"]) == ("cuda", "nf4")
    assert cpu["SESERAGI_DEVICE"] == "cpu" and "SESERAGI_QUANTIZATION" not in cpu
    known = dockerfile.stages()
    for venv, index in (("venv-cpu", "whl/cpu"), ("venv-cuda", "whl/cu")):
        args = dict(a.split("=", 1) for kw, a in known[venv].instructions if kw == "ARG")
        assert any(index in url for url in args.values()), args
        run = " ".join(a for kw, a in known[venv].instructions if kw == "RUN")
        assert "torch==2.13.0" in run


def test_the_model_is_baked_into_a_cache_owned_by_the_runtime_user() -> None:
    model = dockerfile.stages()["model"]
    assert ("RUN", "seseragi model pull") in model.instructions
    cache = dockerfile.env("cpu")["SESERAGI_CACHE_DIR"]
    copies = [a for kw, a in dockerfile.stages()["runtime"].instructions if kw == "COPY"]
    assert f"--from=model --chown=seseragi:seseragi {cache} {cache}" in copies


def test_dockerignore_keeps_the_context_to_the_package_sources() -> None:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("*") + 1 :][:6] == [
        "!pyproject.toml",
        "!README.md",
        "!requirements/service.lock",
        "!contract/",
        "!service/",
        "!clients/python/",
    ]


def test_hadolint_is_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--failure-threshold", "info", str(REPO_ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_cpu_image_carries_a_compiler_for_the_native_kernels_and_runs_unprivileged() -> None:
    cpu = dockerfile.stages()["cpu"].instructions
    runs = [arguments for keyword, arguments in cpu if keyword == "RUN"]
    assert any("apt-get install -y --no-install-recommends g++" in run for run in runs)
    assert any("rm -rf /var/lib/apt/lists/*" in run for run in runs)
    users = [arguments for keyword, arguments in cpu if keyword == "USER"]
    assert users == ["0:0", "10001:10001"]  # root only to install, then the seseragi user
