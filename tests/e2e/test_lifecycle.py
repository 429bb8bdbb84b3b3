"""A real `seseragi serve` process: NOT_SERVING until warm, SERVING after; SIGTERM drains."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from seseragi_contract.v1 import generation_pb2_grpc
from tests.helpers import CAPITAL_QUESTION, as_stream, chat, read_stream

pytestmark = pytest.mark.e2e
SERVICE = "seseragi.v1.GenerationService"
Status = health_pb2.HealthCheckResponse


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def server_process() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    # Flags win over variables: were these variables read, the server would bind port 1 and
    # cut the drained stream after 1 s.
    env = {**os.environ, "SESERAGI_PORT": "1", "SESERAGI_SHUTDOWN_GRACE_SECONDS": "1"}
    flags = ["--port", str(port), "--shutdown-grace-seconds", "60"]
    process = subprocess.Popen(
        [sys.executable, "-m", "seseragi.cli", "serve", *flags], env=env, stderr=subprocess.PIPE
    )
    try:
        yield process, f"127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)


def check(health: health_pb2_grpc.HealthStub, service: str) -> int | None:
    try:
        status: int = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=1).status
    except grpc.RpcError:
        return None  # not bound yet
    return status


def test_health_goes_not_serving_to_serving(
    server_process: tuple[subprocess.Popen[bytes], str],
) -> None:
    _, target = server_process
    seen: list[int | None] = []
    deadline = time.monotonic() + 120
    while Status.SERVING not in seen:
        assert time.monotonic() < deadline, seen
        # A fresh channel per probe: a channel that failed to connect backs off for a second.
        with grpc.insecure_channel(target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            seen.append(check(health, SERVICE))
            if seen[-1] == Status.NOT_SERVING:
                assert check(health, "") == Status.SERVING  # liveness is up while the model loads
        time.sleep(0.02)
    answered = [s for s in seen if s is not None]
    assert answered[0] == Status.NOT_SERVING and answered[-1] == Status.SERVING


def test_the_front_end_never_loads_torch(
    server_process: tuple[subprocess.Popen[bytes], str],
) -> None:
    """The model lives in the core process; the serving process keeps tokenizer, gRPC and HTTP
    only (issue 12's memory target: torch alone would add about 0.4 GB here)."""
    process, target = server_process
    deadline = time.monotonic() + 120
    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while check(health, SERVICE) != Status.SERVING:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        assert "Paris" in stub.Generate(chat(CAPITAL_QUESTION), timeout=60).text
    front_end = psutil.Process(process.pid)
    libraries = {Path(m.path).name for m in front_end.memory_maps() if ".so" in m.path}
    assert not {name for name in libraries if "torch" in name or "xgrammar" in name}
    assert [c.cmdline()[2] for c in front_end.children()] == ["seseragi.engine.core_process"]


def test_sigterm_drains_in_flight_stream_then_exits_zero(
    server_process: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, target = server_process
    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 120
        while check(health, SERVICE) != Status.SERVING:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        request = chat(CAPITAL_QUESTION, max_new_tokens=60, min_new_tokens=60)
        events = iter(stub.GenerateStream(as_stream(request)))
        head = [next(events)]  # started, then the first delta (heartbeats may come first when busy)
        while not head[-1].HasField("delta"):
            head.append(next(events))
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert check(health, SERVICE) == Status.NOT_SERVING
        with pytest.raises(grpc.RpcError) as refused:
            stub.Generate(chat(CAPITAL_QUESTION))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        rest = read_stream(events)
    assert rest.final is not None and rest.final.usage.output_tokens == 60
    assert process.wait(60) == 0
    stderr = process.stderr.read().decode() if process.stderr else ""
    assert "Traceback" not in stderr
