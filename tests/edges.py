"""A real Envoy process in front of real servers, on free loopback ports, for the edge tests."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from seseragi.config import Settings
from seseragi.edge import render
from seseragi.edge.stack import SERVICE, envoy_binary


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EnvoyProcess:
    """Render the config for `settings`, run Envoy, and wait until a replica is routable.

    With a TLS listener (SESERAGI_EDGE_TLS_*), `ca` is the PEM root the readiness check trusts.
    """

    def __init__(
        self,
        settings: Settings,
        out_dir: Path,
        ready_timeout_s: float = 60,
        ca: bytes | None = None,
    ) -> None:
        self.settings = settings
        self.ca = ca
        self._ready_timeout_s = ready_timeout_s
        self._out_dir = out_dir
        self._process: subprocess.Popen[bytes] | None = None
        self.log = out_dir / "envoy.log"

    def __enter__(self) -> EnvoyProcess:
        rendered = render.render(self.settings, self._out_dir)
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                [envoy_binary(), "-c", str(rendered.config), "--disable-hot-restart"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_routable(self._ready_timeout_s)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._process is not None
        self._process.terminate()
        self._process.wait(10)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.settings.edge_port}"

    @property
    def url(self) -> str:
        scheme = "http" if self.ca is None else "https"
        return f"{scheme}://127.0.0.1:{self.settings.edge_port}"

    def channel(self) -> grpc.Channel:
        if self.ca is None:
            return grpc.insecure_channel(self.target)
        return grpc.secure_channel(self.target, grpc.ssl_channel_credentials(self.ca))

    def wait_routable(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with self.channel() as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                assert self._process is not None and self._process.poll() is None, self.log_text()
                with contextlib.suppress(grpc.RpcError):
                    request = health_pb2.HealthCheckRequest(service=SERVICE)
                    if (
                        stub.Check(request, timeout=2).status
                        == health_pb2.HealthCheckResponse.SERVING
                    ):
                        return
                time.sleep(0.3)
        raise TimeoutError(f"Envoy found no ready replica in {timeout_s}s:\n{self.log_text()}")

    def stat(self, name: str) -> int:
        """One counter or gauge from the admin endpoint (0 when Envoy has not created it yet)."""
        url = f"http://127.0.0.1:{self.settings.edge_admin_port}/stats?filter=^{re.escape(name)}$"
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
        values = [int(line.rpartition(" ")[2]) for line in text.splitlines() if line.strip()]
        return sum(values)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def edge_settings(tmp: Path, upstreams: list[str], **overrides: object) -> Settings:
    base: dict[str, object] = {
        "cache_dir": tmp,
        "edge_secret": "test-edge-secret",
        "edge_port": free_port(),
        "edge_admin_port": free_port(),
        "edge_upstreams": ",".join(upstreams),
        "edge_http_upstreams": "",  # no OpenAI routes unless a test names the HTTP ports
        "heartbeat_interval_seconds": 0.5,
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]
