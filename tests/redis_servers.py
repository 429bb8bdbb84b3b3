"""Real Redis for the tests: key cleanup on a shared server, and private servers a test may kill."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time

import redis


def delete_keys(url: str, prefix: str) -> None:
    """Delete this run's keys by prefix; a no-op when Redis is unreachable."""
    try:
        client = redis.Redis.from_url(url, socket_timeout=2)
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
        client.close()
    except redis.RedisError:
        pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PrivateRedis:
    """A redis-server of this test's own, on a port of its own, that the test may stop and start."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self._args = list(args)  # more redis-server options, e.g. a maxmemory policy
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is installed by `make test`"
        self._process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", *self._args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=1)
        for _ in range(100):
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and nothing answers, as in a long pause or partition."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            self._process = None
