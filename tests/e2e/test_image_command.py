"""Start the service exactly as the CPU image would, and pass the image's own HEALTHCHECK.

The command, the environment and the health check are read from the Dockerfile. The only
differences are the ones a container makes invisible: the ports are free ones on this machine,
PATH and VIRTUAL_ENV point at this checkout's virtualenv instead of /opt/venv, and the model
cache is this machine's (the image bakes the same converted model into its cache). The edge
secret comes from the deployment (compose, Kubernetes and the cloud files pass a secret), as the
image refuses to start without one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seseragi.config import Settings
from tests.deploy import dockerfile
from tests.e2e.test_lifecycle import free_port

pytestmark = pytest.mark.e2e
VENV_BIN = Path(sys.executable).parent


def image_environment(target: str) -> dict[str, str]:
    image = dockerfile.env(target)
    image.update(
        SESERAGI_PORT=str(free_port()),
        SESERAGI_HTTP_PORT=str(free_port()),
        SESERAGI_EDGE_SECRET="a-deployment-secret",
        SESERAGI_CACHE_DIR=str(Settings().cache_dir),
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        VIRTUAL_ENV=str(VENV_BIN.parent),
    )
    return image


def test_cpu_image_command_becomes_healthy_and_stops_on_its_stop_signal() -> None:
    env = image_environment("cpu")
    command = dockerfile.exec_form("cpu", "ENTRYPOINT") + dockerfile.exec_form("cpu", "CMD")
    options, check = dockerfile.healthcheck("cpu")
    assert env["SESERAGI_HOST"] == "0.0.0.0" and command == ["seseragi", "serve"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while (result := _run(check, env)).returncode != 0:
            assert process.poll() is None, "the server exited before it became healthy"
            assert time.monotonic() < deadline, result.stdout + result.stderr
            time.sleep(0.5)
        assert "seseragi.v1.GenerationService: SERVING" in result.stdout
        stop_signal = getattr(signal, dockerfile.values("cpu", "STOPSIGNAL")[-1])
        process.send_signal(stop_signal)
        assert process.wait(60) == 0
        assert _run(check, env).returncode == 1  # nothing answers once it has stopped
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)
    stderr = process.stderr.read().decode() if process.stderr else ""
    assert "Traceback" not in stderr


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_the_cpu_image_refuses_to_start_without_an_edge_secret() -> None:
    env = image_environment("cpu")
    del env["SESERAGI_EDGE_SECRET"]
    command = dockerfile.exec_form("cpu", "ENTRYPOINT") + dockerfile.exec_form("cpu", "CMD")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "SESERAGI_REQUIRE_EDGE_SECRET" in result.stderr
