"""Drives the running server over gRPC at a given concurrency and times every streamed delta."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import grpc

from bench.metrics import RequestTiming, ScenarioResult, summarize
from bench.prompts import RenderedPrompt
from bench.rss import RssSampler
from bench.workload import Workload
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc

CALL_TIMEOUT_SECONDS = 900.0


def build_request(
    prompt: RenderedPrompt, max_new_tokens: int, request_id: str
) -> pb.GenerateStreamRequest:
    """Greedy, exactly `max_new_tokens` tokens: min = max makes the server ignore EOS.

    The prompt goes as raw text already rendered with the chat template, so the server encodes
    it to the same ids vLLM receives; the result cache is bypassed so every call runs the model.
    """
    return pb.GenerateStreamRequest(
        prompt=prompt.text,
        sampling=pb.SamplingParams(temperature=0),
        stopping=pb.StoppingCriteria(max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens),
        request_id=request_id,
        cache=pb.CACHE_POLICY_BYPASS,
    )


async def stream_one(
    stub: generation_pb2_grpc.GenerationServiceStub,
    request: pb.GenerateStreamRequest,
    prompt_tokens: int | None = None,
    metadata: Sequence[tuple[str, str]] = (),
) -> RequestTiming:
    """One GenerateStream call; every delta is timestamped with the tokens it carries.

    `metadata` carries the bearer token when the call goes through Envoy."""
    timing = RequestTiming(time.perf_counter())
    seen = 0
    final: pb.Final | None = None
    async for event in stub.GenerateStream(
        request, timeout=CALL_TIMEOUT_SECONDS, metadata=tuple(metadata)
    ):
        kind = event.WhichOneof("event")
        if kind == "delta":
            now = time.perf_counter()
            count = event.delta.generated_token_count - seen or len(event.delta.token_ids)
            seen = event.delta.generated_token_count
            timing.arrivals.append((now, count))
        elif kind == "final":
            final = event.final
    if final is None:
        raise RuntimeError(f"{request.request_id}: the stream ended without a final message")
    if final.usage.output_tokens != timing.tokens:
        raise RuntimeError(
            f"{request.request_id}: usage says {final.usage.output_tokens} tokens,"
            f" deltas carried {timing.tokens}"
        )
    if prompt_tokens is not None and final.usage.input_tokens != prompt_tokens:
        raise RuntimeError(
            f"{request.request_id}: the server counted {final.usage.input_tokens} prompt tokens,"
            f" not the {prompt_tokens} sent to every engine"
        )
    return timing


async def run_concurrency(
    target: str,
    server_pid: int,
    workload: Workload,
    concurrency: int,
    prompts: Sequence[RenderedPrompt],
    name: str = "seseragi",
) -> ScenarioResult:
    """Concurrency 1: requests one after another; N > 1: N requests all at once."""
    count = workload.requests_at(concurrency)
    chosen = [prompts[i % len(prompts)] for i in range(count)]
    requests = [
        build_request(p, workload.max_new_tokens, f"bench-c{concurrency}-{i}")
        for i, p in enumerate(chosen)
    ]
    async with grpc.aio.insecure_channel(target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        await stream_one(stub, build_request(prompts[0], 2, f"bench-c{concurrency}-warm-up"))
        with RssSampler(server_pid) as sampler:
            started = time.perf_counter()
            calls = [
                stream_one(stub, r, len(p.token_ids)) for r, p in zip(requests, chosen, strict=True)
            ]
            if concurrency == 1:
                timings = [await call for call in calls]
            else:
                timings = list(await asyncio.gather(*calls))
            wall = time.perf_counter() - started
    label = f"(c) {name} gRPC, concurrency {concurrency}"
    if concurrency == 1:
        label += f" ({count} sequential)"
    return summarize(f"{name}_c{concurrency}", label, timings, wall, sampler.peak)


def run_one(
    target: str,
    server_pid: int,
    workload: Workload,
    concurrency: int,
    prompts: Sequence[RenderedPrompt],
    name: str = "seseragi",
) -> ScenarioResult:
    """One scenario on its own event loop (and its own channel); figures named `{name}_c{N}`."""
    return asyncio.run(run_concurrency(target, server_pid, workload, concurrency, prompts, name))
