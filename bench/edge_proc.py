"""Envoy in front of one `seseragi serve`, with a signed token, as the benchmark's edge.

Both the gRPC and the OpenAI routes go through it, so a comparison of the two faces includes
the JWT check, the edge secret and Envoy's proxying that every real caller pays.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from bench.server_proc import free_port
from seseragi.config import Settings
from seseragi.edge import render, tokens
from seseragi.edge.stack import envoy_binary, wait_ready

READY_TIMEOUT_SECONDS = 60.0
TOKEN_TTL_SECONDS = 6 * 3600


def edge_settings(state_dir: Path, secret: str, grpc_target: str, http_target: str) -> Settings:
    """One replica behind Envoy; the per-subject bucket is raised so the benchmark's own
    hundreds of calls from one subject are never refused (429 would end a run, not slow it)."""
    return Settings(
        cache_dir=state_dir,
        edge_secret=secret,
        edge_port=free_port(),
        edge_admin_port=free_port(),
        edge_upstreams=grpc_target,
        edge_http_upstreams=http_target,
        edge_requests_per_minute=100_000,
        edge_global_requests_per_minute=100_000,
    )


class EdgeProcess:
    """Render Envoy's config, run it, and wait until both the gRPC and HTTP clusters route."""

    def __init__(self, settings: Settings, out_dir: Path) -> None:
        self.settings = settings
        self.out_dir = out_dir
        self.log_path = out_dir / "envoy.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.token = tokens.mint(settings, "bench", TOKEN_TTL_SECONDS)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.settings.edge_port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.target}/v1"

    def __enter__(self) -> EdgeProcess:
        rendered = render.render(self.settings, self.out_dir)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [envoy_binary(), "-c", str(rendered.config), "--disable-hot-restart"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            if not wait_ready(self.target, READY_TIMEOUT_SECONDS):
                raise TimeoutError(f"Envoy routed no gRPC in {READY_TIMEOUT_SECONDS:.0f} s")
            self._wait_http_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _wait_http_healthy(self) -> None:
        """Envoy's HTTP cluster turns healthy a moment after the gRPC one (its own checks)."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while self._stat("cluster.seseragi_http.membership_healthy") < 1:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Envoy's HTTP cluster never turned healthy: {self.log_path}")
            time.sleep(0.2)

    def _stat(self, name: str) -> int:
        url = f"http://127.0.0.1:{self.settings.edge_admin_port}/stats?filter=^{name}$"
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
        return sum(int(line.rpartition(" ")[2]) for line in text.splitlines() if line.strip())
