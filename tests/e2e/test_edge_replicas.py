"""Two replica processes behind a real Envoy: SIGSTOP, SIGTERM and SIGKILL one of them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from seseragi.edge import tokens
from seseragi_contract.v1 import generation_pb2, generation_pb2_grpc
from tests.edges import EnvoyProcess, edge_settings, free_port
from tests.helpers import as_stream, chat, read_stream

pytestmark = pytest.mark.e2e
SECRET = "test-edge-secret"
STREAMS = 6
BURST = 24


class Replica:
    """`seseragi serve` as its own process, so it can be stopped, killed or drained for real."""

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "SESERAGI_PORT": str(self.port),
            "SESERAGI_EDGE_SECRET": SECRET,
            "SESERAGI_HEARTBEAT_INTERVAL_SECONDS": "0.5",
            "SESERAGI_SHUTDOWN_GRACE_SECONDS": "120",
            "SESERAGI_TORCH_THREADS": "1",
        }
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "seseragi.cli", "serve"], env=env, stdout=log, stderr=log
            )

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(30)


def host_flags(envoy: EnvoyProcess, port: int) -> dict[str, str]:
    url = f"http://127.0.0.1:{envoy.settings.edge_admin_port}/clusters"
    with urllib.request.urlopen(url, timeout=5) as reply:
        lines = reply.read().decode().splitlines()
    prefix = f"seseragi::127.0.0.1:{port}::"
    return dict(line[len(prefix) :].split("::", 1) for line in lines if line.startswith(prefix))


def wait_for(condition: object, timeout_s: float, what: str) -> float:
    """Seconds until `condition()` held; fails after `timeout_s`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if condition():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {timeout_s}s")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EnvoyProcess, list[Replica]]]:
    tmp = tmp_path_factory.mktemp("edge-replicas")
    replicas = [Replica(free_port(), tmp / f"replica-{i}.log") for i in range(2)]
    for replica in replicas:
        replica.start()
    settings = edge_settings(
        tmp, [f"127.0.0.1:{r.port}" for r in replicas], edge_requests_per_minute=10_000
    )
    try:
        with EnvoyProcess(settings, tmp / "envoy", ready_timeout_s=300) as envoy:
            yield envoy, replicas
    finally:
        for replica in replicas:
            replica.stop()


def both_healthy(envoy: EnvoyProcess, replicas: list[Replica]) -> None:
    wait_for(
        lambda: all(host_flags(envoy, r.port).get("health_flags") == "healthy" for r in replicas),
        180,
        "both replicas healthy",
    )


def stream_all(envoy: EnvoyProcess, pool: ThreadPoolExecutor, count: int) -> list[Future[object]]:
    token = tokens.mint(envoy.settings, "failover", 600)
    metadata = (("authorization", f"Bearer {token}"),)

    def one() -> object:
        with grpc.insecure_channel(envoy.target) as channel:
            stub = generation_pb2_grpc.GenerationServiceStub(channel)
            request = as_stream(chat("Tell me about rivers.", max_new_tokens=48))
            return read_stream(stub.GenerateStream(request, metadata=metadata, timeout=300))

    return [pool.submit(one) for _ in range(count)]


def tokenize_all(envoy: EnvoyProcess, count: int) -> tuple[int, int]:
    """`count` Tokenize calls at once through Envoy: (succeeded, failed)."""
    token = tokens.mint(envoy.settings, "burst", 600)
    metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(envoy.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        request = generation_pb2.TokenizeRequest(prompt="a burst of calls")
        calls = [stub.Tokenize.future(request, metadata=metadata, timeout=60) for _ in range(count)]
        failed = sum(1 for call in calls if call.exception() is not None)
    return count - failed, failed


def outcomes(futures: list[Future[object]]) -> tuple[int, int]:
    failed = sum(1 for f in futures if f.exception(timeout=300) is not None)
    return len(futures) - failed, failed


def active_on(envoy: EnvoyProcess, replica: Replica) -> int:
    return int(host_flags(envoy, replica.port).get("rq_active", "0"))


def busiest(envoy: EnvoyProcess, replicas: list[Replica]) -> Replica:
    """The replica with the most streams once all have started (Envoy may not split them evenly)."""
    wait_for(lambda: sum(active_on(envoy, r) for r in replicas) >= STREAMS, 60, "streams started")
    return max(replicas, key=lambda r: active_on(envoy, r))


def test_a_hung_replica_leaves_rotation_within_seconds(
    stack: tuple[EnvoyProcess, list[Replica]],
) -> None:
    envoy, replicas = stack
    both_healthy(envoy, replicas)
    hung = replicas[0]
    hung.signal(signal.SIGSTOP)
    try:
        seconds = wait_for(
            lambda: "failed_active_hc" in host_flags(envoy, hung.port).get("health_flags", ""),
            15,
            "the hung replica taken out",
        )
        before = int(host_flags(envoy, hung.port)["rq_total"])
        with ThreadPoolExecutor(4) as pool:
            assert outcomes(stream_all(envoy, pool, 4)) == (4, 0)
        assert int(host_flags(envoy, hung.port)["rq_total"]) == before
        print(f"SIGSTOP: out of rotation after {seconds:.1f}s")
    finally:
        hung.signal(signal.SIGCONT)


def test_sigterm_on_a_replica_fails_no_call(stack: tuple[EnvoyProcess, list[Replica]]) -> None:
    envoy, replicas = stack
    both_healthy(envoy, replicas)
    with ThreadPoolExecutor(STREAMS + 4) as pool:
        futures = stream_all(envoy, pool, STREAMS)
        draining = busiest(envoy, replicas)
        draining.signal(signal.SIGTERM)
        time.sleep(0.5)
        futures += stream_all(envoy, pool, 4)
        # A burst while Envoy still routes to the draining replica: more refusals at once than
        # Envoy's default of 3 concurrent retries, all of which must move to the other replica.
        burst = tokenize_all(envoy, BURST)
        assert outcomes(futures) == (STREAMS + 4, 0)
    assert burst == (BURST, 0)
    assert envoy.stat("cluster.seseragi.upstream_rq_retry_overflow") == 0
    assert draining.process is not None and draining.process.wait(120) == 0
    draining.start()


def test_sigkill_fails_only_calls_in_flight_on_it(
    stack: tuple[EnvoyProcess, list[Replica]],
) -> None:
    envoy, replicas = stack
    both_healthy(envoy, replicas)
    with ThreadPoolExecutor(STREAMS) as pool:
        futures = stream_all(envoy, pool, STREAMS)
        victim = busiest(envoy, replicas)
        on_victim = active_on(envoy, victim)
        victim.signal(signal.SIGKILL)
        _, failed = outcomes(futures)
    assert failed <= on_victim
    wait_for(
        lambda: host_flags(envoy, victim.port).get("health_flags", "healthy") != "healthy",
        15,
        "Envoy noticing the dead replica",
    )
    with ThreadPoolExecutor(4) as pool:
        assert outcomes(stream_all(envoy, pool, 4)) == (4, 0)
    print(f"SIGKILL: {failed} of {on_victim} streams on the killed replica failed")
