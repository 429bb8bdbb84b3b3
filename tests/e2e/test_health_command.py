"""`seseragi health` — the container's health check — against real servers, as a process."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from seseragi.runtime.app import drain_and_stop, start
from tests.e2e.test_lifecycle import free_port
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.e2e
SERVICE = "seseragi.v1.GenerationService"
HEALTH = [sys.executable, "-m", "seseragi.cli", "health"]


def run_health(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HEALTH, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_exits_zero_when_the_service_is_serving(server: ServerThread) -> None:
    result = run_health("--target", server.target, "--service", SERVICE)
    assert result.returncode == 0, result.stderr
    assert f"{SERVICE}: SERVING" in result.stdout


def test_liveness_is_the_default_service(server: ServerThread) -> None:
    result = run_health("--target", server.target)
    assert result.returncode == 0 and "(liveness): SERVING" in result.stdout


async def test_not_serving_while_the_model_loads_exits_one() -> None:
    running = await start(make_settings())  # bound and alive; the model is never loaded
    target = f"127.0.0.1:{running.port}"
    try:
        readiness = await _health_process("--target", target, "--service", SERVICE)
        liveness = await _health_process("--target", target)
    finally:
        await drain_and_stop(running, 0.0)
    assert readiness == (1, f"{target} {SERVICE}: NOT_SERVING")
    assert liveness == (0, f"{target} (liveness): SERVING")


def test_unknown_service_and_closed_port_exit_one(server: ServerThread) -> None:
    unknown = run_health("--target", server.target, "--service", "no.such.Service")
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr
    closed = run_health("--target", f"127.0.0.1:{free_port()}", "--timeout", "1")
    assert closed.returncode == 1 and "UNAVAILABLE" in closed.stderr


def test_default_target_asks_loopback_when_bound_to_every_interface(server: ServerThread) -> None:
    port = server.target.rsplit(":", 1)[1]
    env = {"SESERAGI_HOST": "0.0.0.0", "SESERAGI_PORT": port, "PATH": ""}
    result = run_health("--service", SERVICE, env=env)
    assert result.returncode == 0 and result.stdout.startswith(f"127.0.0.1:{port} ")


async def _health_process(*args: str) -> tuple[int, str]:
    """Run the CLI beside this event loop, which keeps serving the in-process server."""
    process = await asyncio.create_subprocess_exec(
        *HEALTH, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode().strip()
