"""Many streams share the batch; cancellation, deadlines and a full queue free or refuse at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc
from tests.helpers import CAPITAL_QUESTION, as_stream, chat, read_stream
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.integration
Stub = generation_pb2_grpc.GenerationServiceStub

QUESTIONS = [
    CAPITAL_QUESTION,
    "Name three rivers in Japan.",
    "What is 12 times 12?",
    "Write one sentence about autumn.",
    "Translate 'good morning' to French.",
    "Give me a synonym for 'happy'.",
    "What colour is the sky on a clear day?",
    "Describe a stream in five words.",
]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def varied_request(index: int) -> pb.GenerateRequest:
    request = chat(
        QUESTIONS[index], max_new_tokens=16 + 4 * index, temperature=0.0 if index % 2 == 0 else 0.9
    )
    if index % 2:
        request.sampling.seed = 100 + index
        request.sampling.top_p = 0.9
        request.sampling.top_k = 40 if index % 4 == 1 else 0
    if index == 6:
        request.stopping.stop_sequences.append(".")
    return request


def test_eight_concurrent_streams_match_their_solo_runs(stub: Stub) -> None:
    requests = [varied_request(i) for i in range(8)]
    solo = [stub.Generate(r).text for r in requests]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda r: read_stream(stub.GenerateStream(as_stream(r))), requests))
    for request, alone, together in zip(requests, solo, results, strict=True):
        assert together.final is not None and together.kinds[-1] == "final"
        assert together.text == alone, request.messages[0].content
        assert together.final.usage.output_tokens <= request.stopping.max_new_tokens
    assert "Paris" in results[0].text


def test_cancelled_stream_frees_its_slot_within_a_step(stub: Stub, server: ServerThread) -> None:
    call = stub.GenerateStream(
        as_stream(chat("Write a very long story.", max_new_tokens=1000, min_new_tokens=1000))
    )
    stream: Iterator[pb.GenerateStreamResponse] = iter(call)
    while next(stream).WhichOneof("event") != "delta":
        pass
    assert server.stats().running == 1
    steps_at_cancel = server.stats().steps
    call.cancel()
    wait_until(lambda: server.stats().running == 0)
    assert server.stats().steps - steps_at_cancel <= 2
    assert server.stats().in_flight == 0


def test_expired_deadline_frees_its_slot(stub: Stub, server: ServerThread) -> None:
    request = chat("Write a very long story.", max_new_tokens=1000, min_new_tokens=1000)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Generate(request, timeout=1.0)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    steps_at_expiry = server.stats().steps
    wait_until(lambda: server.stats().running == 0)
    assert server.stats().steps - steps_at_expiry <= 2


@pytest.fixture(scope="module")
def tiny_server(loaded_model: LoadedModel) -> Iterator[ServerThread]:
    """One running slot and one queue place, so the queue is easy to fill."""
    settings = make_settings(
        max_running_requests=1, max_queued_requests=1, heartbeat_interval_seconds=0.2
    )
    with ServerThread(settings, loaded_model) as running:
        yield running


@pytest.fixture
def tiny_stub(tiny_server: ServerThread) -> Iterator[Stub]:
    with grpc.insecure_channel(tiny_server.target) as channel:
        yield generation_pb2_grpc.GenerationServiceStub(channel)


def long_stream(stub: Stub) -> grpc.Future:
    return stub.GenerateStream(
        as_stream(chat("Write a very long story.", max_new_tokens=1000, min_new_tokens=1000))
    )


def test_full_queue_answers_resource_exhausted_with_retry_info(
    tiny_stub: Stub, tiny_server: ServerThread
) -> None:
    running = long_stream(tiny_stub)
    assert next(iter(running)).started.queue_position == 0
    queued = long_stream(tiny_stub)
    try:
        first = next(iter(queued))
        assert first.started.queue_position == 1
        wait_until(lambda: tiny_server.stats().running == 1 and tiny_server.stats().waiting == 1)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            tiny_stub.Generate(chat(CAPITAL_QUESTION))
        assert time.monotonic() - started < 1.0, "refusal must be immediate"
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        status = rpc_status.from_call(caught.value)
        assert status is not None
        assert any(d.type_url.endswith("google.rpc.RetryInfo") for d in status.details)
    finally:
        running.cancel()
        queued.cancel()
    wait_until(lambda: tiny_server.stats().in_flight == 0 and tiny_server.stats().running == 0)


def test_queued_request_sends_heartbeats_and_expires_before_prefill(
    tiny_stub: Stub, tiny_server: ServerThread
) -> None:
    running = long_stream(tiny_stub)
    try:
        next(iter(running))
        wait_until(lambda: tiny_server.stats().running == 1)
        queued = tiny_stub.GenerateStream(as_stream(chat(CAPITAL_QUESTION)), timeout=1.0)
        events: list[pb.GenerateStreamResponse] = []
        with pytest.raises(grpc.RpcError) as caught:
            events.extend(queued)
        kinds = [event.WhichOneof("event") for event in events]
        phases = {event.heartbeat.phase for event in events if event.HasField("heartbeat")}
        assert phases == {pb.PHASE_QUEUED}
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert kinds[0] == "started" and "heartbeat" in kinds and "delta" not in kinds
        wait_until(lambda: tiny_server.stats().waiting == 0)
        assert (
            tiny_server.stats().running == 1
        )  # the long stream still runs; the expired one never did
    finally:
        running.cancel()
    wait_until(lambda: tiny_server.stats().running == 0)


BURST = 64


async def refused_status(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_a_full_replica_refuses_a_burst_at_once_with_the_reason(
    tiny_stub: Stub, tiny_server: ServerThread
) -> None:
    """Running and queued places taken by long streams: a burst of both generation calls ends
    RESOURCE_EXHAUSTED (reason ENGINE_FULL, a retry delay) at the gate; the streams keep their
    places."""
    running, queued = long_stream(tiny_stub), long_stream(tiny_stub)
    try:
        next(iter(running)), next(iter(queued))
        wait_until(lambda: tiny_server.stats().running == 1 and tiny_server.stats().waiting == 1)
        started = time.monotonic()
        async with grpc.aio.insecure_channel(tiny_server.target) as channel:
            stub = generation_pb2_grpc.GenerationServiceStub(channel)

            async def read_all(request: pb.GenerateStreamRequest) -> None:
                async for _ in stub.GenerateStream(request):
                    pass

            request = chat(CAPITAL_QUESTION)
            errors = await asyncio.gather(
                *(
                    refused_status(
                        stub.Generate(request) if i % 2 else read_all(as_stream(request))
                    )
                    for i in range(BURST)
                )
            )
        assert time.monotonic() - started < 30, "a refused burst must not wait for the streams"
        for error in errors:
            assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, error
            status = rpc_status.from_call(error)  # type: ignore[arg-type]
            assert status is not None and status.message.startswith("the engine is full")
            reasons = [d for d in status.details if d.type_url.endswith("google.rpc.ErrorInfo")]
            info = error_details_pb2.ErrorInfo()
            assert len(reasons) == 1 and reasons[0].Unpack(info) and info.reason == "ENGINE_FULL"
            assert any(d.type_url.endswith("google.rpc.RetryInfo") for d in status.details)
        stats = tiny_server.stats()
        assert (stats.running, stats.waiting) == (1, 1)
    finally:
        running.cancel()
        queued.cancel()
    wait_until(lambda: tiny_server.stats().in_flight == 0 and tiny_server.stats().running == 0)
