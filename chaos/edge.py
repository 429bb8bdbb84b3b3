"""Envoy in front of the replicas, run through the containers' wrapper (`graceful-envoy`), so a
SIGTERM here drains exactly as it does in compose and Kubernetes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from seseragi.config import Settings
from seseragi.edge import render, tokens
from seseragi.edge.stack import envoy_binary

WRAPPER = Path(__file__).resolve().parent.parent / "envoy" / "bin" / "graceful-envoy"
SERVICE = "seseragi.v1.GenerationService"


class Edge:
    """One Envoy on fixed ports; `start` again after a stop reuses the same config."""

    def __init__(self, settings: Settings, out_dir: Path, drain_grace_s: float = 120) -> None:
        self.settings = settings
        self.out_dir = out_dir
        self.log = out_dir / "envoy.log"
        self.drain_grace_s = drain_grace_s
        self.process: subprocess.Popen[bytes] | None = None
        self.config = render.render(settings, out_dir).config

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.settings.edge_port}"

    def token(self, subject: str) -> str:
        return tokens.mint(self.settings, subject, 3600)

    def start(self) -> None:
        env = {
            **os.environ,
            "ENVOY_BIN": envoy_binary(),
            "ENVOY_ADMIN_PORT": str(self.settings.edge_admin_port),
            "ENVOY_DRAIN_GRACE_SECONDS": str(int(self.drain_grace_s)),
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                ["bash", str(WRAPPER), "-c", str(self.config), "--disable-hot-restart"]
                + ["--log-level", "warn"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_routable(self, timeout_s: float = 300) -> float:
        """Seconds until a health check through Envoy reaches a SERVING replica."""
        started = time.monotonic()
        request = health_pb2.HealthCheckRequest(service=SERVICE)
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() - started < timeout_s:
                if self.process is None or self.process.poll() is not None:
                    raise RuntimeError(f"Envoy exited:\n{self.log.read_text()[-2000:]}")
                with contextlib.suppress(grpc.RpcError):
                    if (
                        stub.Check(request, timeout=2).status
                        == health_pb2.HealthCheckResponse.SERVING
                    ):
                        return time.monotonic() - started
                time.sleep(0.2)
        raise TimeoutError(f"Envoy found no ready replica in {timeout_s:.0f} s")

    def sigterm(self) -> None:
        if self.process is None:
            raise RuntimeError("Envoy is not running")
        self.process.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout_s: float) -> int:
        if self.process is None:
            raise RuntimeError("Envoy is not running")
        code = self.process.wait(timeout_s)
        self.process = None
        return code

    def host(self, port: int) -> dict[str, str]:
        """Envoy's view of one replica: health_flags, rq_active, rq_total ..."""
        url = f"http://127.0.0.1:{self.settings.edge_admin_port}/clusters"
        with urllib.request.urlopen(url, timeout=5) as reply:
            lines = reply.read().decode().splitlines()
        prefix = f"seseragi::127.0.0.1:{port}::"
        return dict(line[len(prefix) :].split("::", 1) for line in lines if line.startswith(prefix))

    def healthy(self, port: int) -> bool:
        return self.host(port).get("health_flags") == "healthy"

    def active_on(self, port: int) -> int:
        return int(self.host(port).get("rq_active", "0"))

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)
        # the wrapper's child: Envoy itself, found by its admin port being held
        with contextlib.suppress(OSError):
            urllib.request.urlopen(
                urllib.request.Request(
                    f"http://127.0.0.1:{self.settings.edge_admin_port}/quitquitquit",
                    method="POST",
                ),
                timeout=2,
            ).close()
