"""A replica refuses a call beyond its engine's capacity before parsing it (fast RESOURCE_EXHAUSTED
for a crowd), and a finished call gives its slot back; the gate refuses before any other
interceptor or handler runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from seseragi.api.admission import AdmissionGate
from seseragi.api.generations import Generations
from seseragi.api.limits import CallerLimitReached
from seseragi.config import Settings
from seseragi.engine.errors import EngineFull
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc

pytestmark = pytest.mark.unit


def test_calls_beyond_running_plus_queued_are_refused_until_one_ends() -> None:
    generations = Generations(Settings(max_running_requests=2, max_queued_requests=1))
    releases = [generations.hold_slot(f"caller-{i}") for i in range(3)]
    with pytest.raises(EngineFull):
        generations.hold_slot("caller-3")
    releases.pop()()
    generations.hold_slot("caller-3")


def test_a_caller_refused_by_its_own_cap_takes_no_replica_slot() -> None:
    settings = Settings(max_running_requests=1, max_queued_requests=1, max_requests_per_caller=1)
    generations = Generations(settings)
    generations.hold_slot("alice")
    with pytest.raises(CallerLimitReached):
        generations.hold_slot("alice")
    generations.hold_slot("bob")


class Servicer(generation_pb2_grpc.GenerationServiceServicer):
    """Counts the calls that reached a handler; the gate must stop refused ones before."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def Generate(  # noqa: N802 - the RPC name from the contract
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> pb.GenerateResponse:
        self.calls.append("Generate")
        return pb.GenerateResponse(text="ran")

    async def GenerateStream(  # noqa: N802 - the RPC name from the contract
        self, request: pb.GenerateStreamRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateStreamResponse]:
        self.calls.append("GenerateStream")
        yield pb.GenerateStreamResponse(final=pb.Final())

    async def GetModelInfo(  # noqa: N802 - the RPC name from the contract
        self, request: pb.GetModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetModelInfoResponse:
        self.calls.append("GetModelInfo")
        return pb.GetModelInfoResponse()


class Seen(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """An interceptor behind the gate: it must not run for a refused call."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        self.methods.append(details.method)
        return await continuation(details)


@dataclass
class Gated:
    servicer: Servicer
    seen: Seen
    refused: list[tuple[str, bool]]
    channel: grpc.aio.Channel
    full: list[bool]

    @property
    def stub(self) -> generation_pb2_grpc.GenerationServiceStub:
        return generation_pb2_grpc.GenerationServiceStub(self.channel)


@pytest.fixture
async def gated() -> AsyncIterator[Gated]:
    full = [True]
    refused: list[tuple[str, bool]] = []

    def refusal() -> Exception | None:
        return EngineFull(2, 3, 1.0) if full[0] else None

    seen, servicer = Seen(), Servicer()
    gate = AdmissionGate(refusal, lambda method, streaming: refused.append((method, streaming)))
    server = grpc.aio.server(interceptors=[gate, seen])
    generation_pb2_grpc.add_GenerationServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Gated(servicer, seen, refused, channel, full)
    finally:
        await server.stop(0)


def assert_engine_full(error: grpc.aio.AioRpcError) -> None:
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.details() == "the engine is full (2 running, 3 waiting); retry in 1.0s"
    status = status_pb2.Status.FromString(
        dict(error.trailing_metadata() or ())["grpc-status-details-bin"]  # type: ignore[arg-type]
    )
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    assert any(d.Unpack(info) for d in status.details) and info.reason == "ENGINE_FULL"
    assert any(d.Unpack(retry) for d in status.details) and retry.retry_delay.seconds == 1


async def test_a_full_replica_refuses_both_generation_calls_before_anything_else_runs(
    gated: Gated,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as unary:
        await gated.stub.Generate(pb.GenerateRequest(prompt="hi"))
    with pytest.raises(grpc.aio.AioRpcError) as stream:
        async for _ in gated.stub.GenerateStream(pb.GenerateStreamRequest(prompt="hi")):
            pass
    assert_engine_full(unary.value)
    assert_engine_full(stream.value)
    assert gated.servicer.calls == [] and gated.seen.methods == []
    assert gated.refused == [
        ("/seseragi.v1.GenerationService/Generate", False),
        ("/seseragi.v1.GenerationService/GenerateStream", True),
    ]


async def test_a_refused_call_is_not_parsed(gated: Gated) -> None:
    """Bytes that are no GenerateRequest still get the capacity refusal: nothing read them."""
    raw = gated.channel.unary_unary("/seseragi.v1.GenerationService/Generate")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await raw(b"\xff\xff\xff not a message")
    assert_engine_full(refused.value)


async def test_calls_pass_while_there_is_room_and_other_methods_always(gated: Gated) -> None:
    info = await gated.stub.GetModelInfo(pb.GetModelInfoRequest())
    assert info == pb.GetModelInfoResponse()
    gated.full[0] = False
    assert (await gated.stub.Generate(pb.GenerateRequest(prompt="hi"))).text == "ran"
    assert [m async for m in gated.stub.GenerateStream(pb.GenerateStreamRequest(prompt="hi"))]
    assert gated.servicer.calls == ["GetModelInfo", "Generate", "GenerateStream"]
    assert gated.refused == []
