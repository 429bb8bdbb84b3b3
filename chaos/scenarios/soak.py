"""8 streams back to back through Envoy for the soak time: memory and token pace must not drift."""

from __future__ import annotations

import asyncio
import statistics
import time

import grpc

from chaos.calls import Tally, counted, stream_request, stream_text
from chaos.outcome import Durations, Outcome
from chaos.stack import Stack
from seseragi_contract.v1 import generation_pb2_grpc

NAME = "soak: 8 streams for 30 min"
LOAD = "steady"
MUST = "RSS growth < 5 %, p95 inter-token latency stable"
STREAMS = 8
RSS_GROWTH_LIMIT = 0.05
P95_DRIFT_LIMIT = 1.25  # the last third's p95 gap over the first third's
WARM_UP_FRACTION = 0.1  # the RSS baseline is taken once the batch has run this long


def run(stack: Stack, durations: Durations) -> Outcome:
    return asyncio.run(_run(stack, durations))


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else 0.0


async def _run(stack: Stack, durations: Durations) -> Outcome:
    started = time.perf_counter()
    ends = started + durations.soak_s
    gaps: list[tuple[float, float]] = []  # (when, seconds since the stream's previous token)
    tally = Tally()

    async def one_stream(stub: generation_pb2_grpc.GenerationServiceStub, i: int) -> None:
        while time.perf_counter() < ends:
            last: list[float] = []

            def on_token(now: float, last: list[float] = last) -> None:
                if last:
                    gaps.append((now, now - last[0]))
                last[:] = [now]

            request = stream_request(i, 64)
            await counted(tally, stream_text(stub, request, stack.metadata(i), on_token=on_token))

    rss = {}

    async def sample_rss() -> None:
        await asyncio.sleep(durations.soak_s * WARM_UP_FRACTION)
        rss["baseline"] = sum(r.rss() for r in stack.replicas)
        await asyncio.sleep(max(0.0, ends - time.perf_counter() - 1))
        rss["end"] = sum(r.rss() for r in stack.replicas)

    async with grpc.aio.insecure_channel(stack.edge.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        await asyncio.gather(sample_rss(), *(one_stream(stub, i) for i in range(STREAMS)))
    third = durations.soak_s / 3
    first = p95([gap for when, gap in gaps if when < started + third])
    last = p95([gap for when, gap in gaps if when >= ends - third])
    growth = rss["end"] / rss["baseline"] - 1
    return Outcome(
        NAME.replace("30 min", f"{durations.soak_s / 60:g} min"),
        LOAD,
        MUST,
        requests=tally.total,
        failed=tally.failed,
        passed=tally.failed == 0 and growth < RSS_GROWTH_LIMIT and last <= P95_DRIFT_LIMIT * first,
        detail=f"{tally.summary()}; replicas' RSS {rss['baseline'] / 2**20:.0f} MiB after"
        f" warm-up → {rss['end'] / 2**20:.0f} MiB at the end ({growth:+.1%}, limit"
        f" {RSS_GROWTH_LIMIT:.0%}); p95 inter-token gap first third {first * 1000:.0f} ms, last"
        f" third {last * 1000:.0f} ms (limit {P95_DRIFT_LIMIT:g}× the first)",
    )
