"""Seseragi's side of the engine probes (see bench.probes), driven over gRPC."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import grpc

from bench.grpc_load import build_request, stream_one
from bench.metrics import RequestTiming
from bench.probes import arrival_values, conversation_values
from bench.prompts import RenderedPrompt
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc

Stub = generation_pb2_grpc.GenerationServiceStub
CONVERSATION_NEW_TOKENS = 8


async def _until_tokens(timings: Sequence[RequestTiming], tokens: int, limit: float) -> None:
    """Wait until every running stream has decoded `tokens` tokens (or `limit` seconds pass)."""
    deadline = time.perf_counter() + limit
    while any(t.tokens < tokens for t in timings) and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)


async def arrivals(
    target: str,
    running: Sequence[RenderedPrompt],
    newcomers: Sequence[RenderedPrompt],
    running_tokens: int,
    newcomer_tokens: int,
) -> dict[str, float | None]:
    """`running` streams decode; once each has 8 tokens, all `newcomers` arrive at once."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = Stub(channel)
        await stream_one(stub, build_request(running[0], 2, "probe-arrivals-warm-up"))
        live = [RequestTiming(0.0) for _ in running]
        tasks = [
            asyncio.create_task(
                _stream_into(stub, build_request(p, running_tokens, f"probe-run-{i}"), live[i])
            )
            for i, p in enumerate(running)
        ]
        await _until_tokens(live, 8, limit=120.0)
        burst_at = time.perf_counter()
        arrived = await asyncio.gather(
            *(
                stream_one(stub, build_request(p, newcomer_tokens, f"probe-new-{i}"))
                for i, p in enumerate(newcomers)
            )
        )
        await asyncio.gather(*tasks)
    return arrival_values(live, burst_at, arrived)


async def _stream_into(stub: Stub, request: pb.GenerateStreamRequest, into: RequestTiming) -> None:
    """Like stream_one, but fills a timing the caller can watch while the stream runs."""
    into.start = time.perf_counter()
    seen = 0
    async for event in stub.GenerateStream(request, timeout=900.0):
        if event.WhichOneof("event") == "delta":
            count = event.delta.generated_token_count - seen or len(event.delta.token_ids)
            seen = event.delta.generated_token_count
            into.arrivals.append((time.perf_counter(), count))


async def conversation(
    target: str, turns: Sequence[RenderedPrompt], warm_up: RenderedPrompt
) -> dict[str, float | None]:
    """The turns one after another, twice; TTFT first vs repeated.

    The warm-up call uses an unrelated prompt, so nothing of the conversation is seen before.
    """
    async with grpc.aio.insecure_channel(target) as channel:
        stub = Stub(channel)
        await stream_one(stub, build_request(warm_up, 2, "probe-conv-warm-up"))
        passes: list[list[RequestTiming]] = []
        for round_index in range(2):
            passes.append(
                [
                    await stream_one(
                        stub,
                        build_request(p, CONVERSATION_NEW_TOKENS, f"probe-conv-{round_index}-{i}"),
                        len(p.token_ids),
                    )
                    for i, p in enumerate(turns)
                ]
            )
    return conversation_values(passes[0], passes[1])


def run_arrivals(
    target: str,
    running: Sequence[RenderedPrompt],
    newcomers: Sequence[RenderedPrompt],
    running_tokens: int,
    newcomer_tokens: int,
) -> dict[str, float | None]:
    return asyncio.run(arrivals(target, running, newcomers, running_tokens, newcomer_tokens))


def run_conversation(
    target: str, turns: Sequence[RenderedPrompt], warm_up: RenderedPrompt
) -> dict[str, float | None]:
    return asyncio.run(conversation(target, turns, warm_up))
