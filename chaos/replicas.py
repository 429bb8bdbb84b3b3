"""`seseragi serve` and `seseragi worker` as real processes that a scenario may signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chaos.ports import free_port

SERVICE = "seseragi.v1.GenerationService"


def process_env(redis_url: str, secret: str, **settings: str) -> dict[str, str]:
    """What every replica and worker shares: one Redis, the edge secret, small CPU footprints."""
    return {
        **os.environ,
        "SESERAGI_REDIS_URL": redis_url,
        "SESERAGI_EDGE_SECRET": secret,
        "SESERAGI_TORCH_THREADS": "1",
        "SESERAGI_KV_CACHE_BYTES": str(160 << 20),
        "SESERAGI_METRICS_PORT": "-1",
        "SESERAGI_HTTP_PORT": "-1",
        "SESERAGI_LOG_LEVEL": "WARNING",
        **{f"SESERAGI_{key.upper()}": value for key, value in settings.items()},
    }


class Replica:
    """One `seseragi serve` on a fixed port, so a restarted replica rejoins Envoy's cluster."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.env = {**env, "SESERAGI_PORT": str(self.port)}
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the replica is not running")
        return self.process.pid

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "seseragi.cli", "serve"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout_s: float = 300) -> float:
        """Seconds until its health service says SERVING."""
        started = time.monotonic()
        request = health_pb2.HealthCheckRequest(service=SERVICE)
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() - started < timeout_s:
                if self.process is None or self.process.poll() is not None:
                    code = None if self.process is None else self.process.returncode
                    raise RuntimeError(f"replica {self.port} exited ({code}):\n{self.log_tail()}")
                try:
                    if (
                        stub.Check(request, timeout=1).status
                        == health_pb2.HealthCheckResponse.SERVING
                    ):
                        return time.monotonic() - started
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
        raise TimeoutError(f"replica {self.port} not ready in {timeout_s:.0f} s")

    def signal(self, signum: int) -> None:
        if self.process is None:
            raise RuntimeError("the replica is not running")
        self.process.send_signal(signum)

    def wait_exit(self, timeout_s: float) -> int:
        if self.process is None:
            raise RuntimeError("the replica is not running")
        return self.process.wait(timeout_s)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def rss(self) -> int:
        """Resident bytes of the replica and any process it spawned."""
        process = psutil.Process(self.pid)
        return int(sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]))

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
            process.wait(30)

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Workers:
    """`seseragi worker` processes on the shared queue, oldest first."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = {**env, "SESERAGI_JOB_CONCURRENCY": "4"}
        self.log = log
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "seseragi.cli", "worker"],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    def sigkill_oldest(self) -> None:
        victim = self.processes.pop(0)
        victim.kill()
        victim.wait(30)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(30)
        self.processes.clear()
