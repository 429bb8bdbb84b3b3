"""The containers' Envoy wrapper (`envoy/bin/graceful-envoy`): SIGTERM cuts no stream in flight."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from seseragi.config import Settings
from seseragi.edge import render, tokens
from seseragi.edge.stack import envoy_binary, wait_ready
from seseragi.model.loader import LoadedModel
from tests.edges import edge_settings
from tests.helpers import stream_through_a_stop
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.e2e
WRAPPER = Path(__file__).parents[2] / "envoy" / "bin" / "graceful-envoy"
SECRET = "test-edge-secret"


@pytest.fixture
def wrapped_envoy(
    loaded_model: LoadedModel, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Settings]]:
    with ServerThread(make_settings(edge_secret=SECRET), loaded_model) as server:
        settings = edge_settings(tmp_path, [server.target])
        rendered = render.render(settings, tmp_path / "envoy")
        env = {
            **os.environ,
            "ENVOY_BIN": envoy_binary(),
            "ENVOY_ADMIN_PORT": str(settings.edge_admin_port),
            "ENVOY_DRAIN_GRACE_SECONDS": "120",
        }
        wrapper = subprocess.Popen(
            ["bash", str(WRAPPER), "-c", str(rendered.config), "--disable-hot-restart"],
            env=env,
        )
        try:
            assert wait_ready(f"127.0.0.1:{settings.edge_port}", timeout_s=60)
            yield wrapper, settings
        finally:
            if wrapper.poll() is None:
                wrapper.kill()
            wrapper.wait(30)


def test_sigterm_lets_the_open_stream_finish_then_exits_zero(
    wrapped_envoy: tuple[subprocess.Popen[bytes], Settings],
) -> None:
    wrapper, settings = wrapped_envoy
    target = f"127.0.0.1:{settings.edge_port}"
    token = tokens.mint(settings, "container", 600)
    stream_through_a_stop(target, token, lambda: wrapper.send_signal(signal.SIGTERM))
    assert wrapper.wait(60) == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", settings.edge_port), timeout=5)


def test_a_jwks_passed_in_the_environment_is_written_where_envoy_reads_it(tmp_path: Path) -> None:
    """ECS hands secrets over as environment variables; Envoy reads the JWKS from a file."""
    jwks = tmp_path / "jwt" / "jwks.json"
    jwks.parent.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "ENVOY_BIN": "true",  # stands in for Envoy: only the file matters here
        "ENVOY_JWKS": '{"keys": []}',
        "ENVOY_JWKS_FILE": str(jwks),
    }
    done = subprocess.run(["bash", str(WRAPPER)], env=env, timeout=30, check=False)
    assert done.returncode == 0
    assert jwks.read_text() == '{"keys": []}'
