"""The engine core in its own process: what happens when it dies, cannot start, or is orphaned."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from seseragi.engine.core_client import CoreClient, CoreStartFailed
from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import generation_pb2_grpc
from tests.helpers import CAPITAL_QUESTION, as_stream, chat
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.integration
SERVICE = "seseragi.v1.GenerationService"


def health_of(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        request = health_pb2.HealthCheckRequest(service=SERVICE)
        return health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status  # type: ignore[no-any-return]


@pytest.fixture
def core_server(loaded_model: LoadedModel) -> Iterator[ServerThread]:
    with ServerThread(make_settings(engine_process=True), loaded_model) as running:
        yield running


def core_pid(server: ServerThread) -> int:
    assert server.running is not None and server.running.backend is not None
    engine = server.running.backend.engine
    assert isinstance(engine, CoreClient)
    return engine.pid


def test_the_core_ignores_interrupts_meant_for_the_whole_process_group(
    core_server: ServerThread,
) -> None:
    """Ctrl-C reaches every process of the terminal's group; the front end decides on the drain."""
    os.kill(core_pid(core_server), signal.SIGINT)
    os.kill(core_pid(core_server), signal.SIGTERM)
    with grpc.insecure_channel(core_server.target) as channel:
        reply = generation_pb2_grpc.GenerationServiceStub(channel).Generate(
            chat(CAPITAL_QUESTION), timeout=60
        )
    assert "Paris" in reply.text
    assert health_of(core_server.target) == health_pb2.HealthCheckResponse.SERVING


def test_a_killed_core_fails_open_calls_unavailable_at_once(core_server: ServerThread) -> None:
    assert health_of(core_server.target) == health_pb2.HealthCheckResponse.SERVING
    with grpc.insecure_channel(core_server.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        request = chat("Write a very long story.", max_new_tokens=1000, min_new_tokens=1000)
        stream = iter(stub.GenerateStream(as_stream(request), timeout=60))
        while next(stream).WhichOneof("event") != "delta":
            pass
        os.kill(core_pid(core_server), signal.SIGKILL)
        killed = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            for _ in stream:
                pass
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - killed < 3.0, "the open stream hung after the core died"
        assert "engine core exited unexpectedly" in (caught.value.details() or "")
        with pytest.raises(grpc.RpcError) as refused:
            stub.Generate(chat(CAPITAL_QUESTION), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert health_of(core_server.target) == health_pb2.HealthCheckResponse.NOT_SERVING
    assert core_server.stats().in_flight == 0


def test_a_core_that_cannot_load_its_model_fails_the_start(
    loaded_model: LoadedModel, tmp_path: Path
) -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    settings = make_settings(engine_process=True, model=str(tmp_path / "no-such-model"))
    with pytest.raises(CoreStartFailed, match="could not start"):
        asyncio.run(CoreClient.launch(settings, loaded_model.tokenizer))
    after = {p.pid for p in psutil.Process().children(recursive=True)}
    assert after <= before, "the failed core was left running"


ORPHANING_PARENT = """
import asyncio, sys, time
from seseragi.config import Settings
from seseragi.engine.core_client import CoreClient
from seseragi.model.loader import load_tokenizer

async def main() -> None:
    settings = Settings.model_validate_json(sys.stdin.read())
    client = await CoreClient.launch(settings, load_tokenizer(settings))
    print(client.pid, flush=True)
    time.sleep(600)

asyncio.run(main())
"""


def test_the_core_dies_with_its_parent() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", ORPHANING_PARENT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdin is not None and parent.stdout is not None
    parent.stdin.write(make_settings(engine_process=True).model_dump_json())
    parent.stdin.close()
    try:
        core = psutil.Process(int(parent.stdout.readline()))
        assert core.is_running() and core.ppid() == parent.pid
    finally:
        parent.kill()
        parent.wait(30)
    gone, _ = psutil.wait_procs([core], timeout=10)
    assert gone or core.status() == psutil.STATUS_ZOMBIE, "the core outlived its parent"
