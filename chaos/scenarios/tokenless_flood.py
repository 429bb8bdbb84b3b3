"""Callers without a token flood Envoy at full speed while authenticated callers work."""

from __future__ import annotations

import asyncio
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chaos.calls import Tally, counted, unary_loop
from chaos.outcome import Durations, Outcome
from chaos.stack import Stack
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc

NAME = "token-less flood through Envoy"
LOAD = "10 s at full speed"
MUST = "0 authenticated refusals"
FLOODERS = 24
AUTHENTICATED = 4
SERVICE = "seseragi.v1.GenerationService"


async def flood(channel: grpc.aio.Channel, ends: float, tally: Tally, i: int) -> None:
    """Token-less calls back to back: health checks (open) and Generate/Tokenize (refused)."""
    health = health_pb2_grpc.HealthStub(channel)
    stub = generation_pb2_grpc.GenerationServiceStub(channel)
    while time.monotonic() < ends:
        kind = i % 3
        if kind == 0:
            call = health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
        elif kind == 1:
            call = stub.Tokenize(pb.TokenizeRequest(prompt="flood"), timeout=5)
        else:
            call = stub.Generate(pb.GenerateRequest(prompt="flood"), timeout=5)
        await counted(tally, call)
        i += 1


def run(stack: Stack, durations: Durations) -> Outcome:
    return asyncio.run(_run(stack, durations))


async def _run(stack: Stack, durations: Durations) -> Outcome:
    flooded, served = Tally(), Tally()
    before = sum(int(stack.edge.host(r.port).get("rq_total", "0")) for r in stack.replicas)
    async with (
        grpc.aio.insecure_channel(stack.edge.target) as flood_channel,
        grpc.aio.insecure_channel(stack.edge.target) as channel,
    ):
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        stop = asyncio.Event()
        loops = [
            asyncio.create_task(unary_loop(stub, stack.metadata(i), stop, served, i))
            for i in range(AUTHENTICATED)
        ]
        started = time.monotonic()
        ends = started + durations.flood_s
        await asyncio.gather(*(flood(flood_channel, ends, flooded, i) for i in range(FLOODERS)))
        elapsed = time.monotonic() - started
        stop.set()
        await asyncio.gather(*loops)
    after = sum(int(stack.edge.host(r.port).get("rq_total", "0")) for r in stack.replicas)
    return Outcome(
        NAME.replace("10 s", f"{durations.flood_s:g} s"),
        LOAD.replace("10 s", f"{durations.flood_s:g} s"),
        MUST,
        requests=flooded.total + served.total,
        failed=served.failed,
        passed=served.failed == 0,
        detail=f"{flooded.total} token-less calls ({flooded.total / elapsed:.0f}/s):"
        f" {flooded.summary()}; authenticated Generate meanwhile: {served.summary()};"
        f" requests reaching the replicas in the window: {after - before} (authenticated calls,"
        " Envoy's health checks and the open health service)",
    )
