"""Runs the real `seseragi serve` as a subprocess, waits until it is ready, and always stops it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVICE_NAME = "seseragi.v1.GenerationService"
READY_TIMEOUT_SECONDS = 300.0
STOP_TIMEOUT_SECONDS = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """`seseragi serve` on a free loopback port, as a context manager that never leaks it.

    Exiting sends SIGTERM (the server drains), then SIGKILL if it has not exited in time.
    """

    def __init__(self, settings: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, **settings, "SESERAGI_HOST": "127.0.0.1"}
        self.env["SESERAGI_PORT"] = str(self.port)
        self.log_path = log_path
        self._log: IO[bytes] | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "seseragi.cli", "serve"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            self.wait_ready()
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

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the server is not running")
        return self.process.pid

    def wait_ready(self) -> None:
        """Poll the gRPC health service until the generation service reports SERVING."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        request = health_pb2.HealthCheckRequest(service=SERVICE_NAME)
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"the server exited early:\n{self.log_tail()}")
                try:
                    reply = stub.Check(request, timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass  # not bound yet, or NOT_SERVING while loading
                time.sleep(0.25)
        raise TimeoutError(f"the server was not ready in {READY_TIMEOUT_SECONDS:.0f} s")

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL; safe to call more than once."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
