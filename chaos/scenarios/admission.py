"""2,000 streams asked at once of one replica, then of Envoy: refusals beyond capacity, fast,
memory bounded."""

from __future__ import annotations

import asyncio
import statistics
import threading
from collections.abc import Callable

import grpc
import psutil

from chaos.calls import Metadata, Tally, counted, stream_request, stream_text
from chaos.outcome import Durations, Outcome
from chaos.stack import Stack
from seseragi_contract.v1 import generation_pb2_grpc

NAME = "2,000 concurrent streams requested"
LOAD = "admission"
MUST = "fast RESOURCE_EXHAUSTED beyond capacity, no crash, RSS bounded"
STREAMS = 2000
CHANNELS = 8
REFUSAL_P95_LIMIT_S = 2.0  # client-side, with 2,000 calls started by one Python process
RSS_PEAK_LIMIT = 1.5  # peak over the idle resident size


class PeakRss(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            try:
                rss = self.process.memory_info().rss
                rss += sum(c.memory_info().rss for c in self.process.children(recursive=True))
            except psutil.Error:
                return
            self.peak = max(self.peak, rss)


def run(stack: Stack, durations: Durations) -> Outcome:
    return asyncio.run(_run(stack, durations))


async def _run(stack: Stack, durations: Durations) -> Outcome:
    replica = stack.replicas[0]
    idle = replica.rss()
    sampler = PeakRss(replica.pid)
    sampler.start()
    try:
        direct = await crowd(replica.target, stack.direct)
    finally:
        sampler.done.set()
        sampler.join()
    alive = replica.alive()
    after = replica.rss() if alive else 0
    # The same crowd through Envoy, each call with its own token: its circuit breaker and the
    # replicas' gates share the refusals.
    edge = await crowd(stack.edge.target, stack.caller)
    p95 = {name: percentile(tally, 95) for name, tally in (("direct", direct), ("edge", edge))}
    return Outcome(
        NAME,
        LOAD,
        MUST,
        requests=direct.total + edge.total,
        failed=sum(t.total - t.codes["OK"] - t.codes["RESOURCE_EXHAUSTED"] for t in (direct, edge)),
        passed=alive
        and all(set(t.codes) <= {"OK", "RESOURCE_EXHAUSTED"} for t in (direct, edge))
        and direct.codes["RESOURCE_EXHAUSTED"] > 0
        and max(p95.values()) <= REFUSAL_P95_LIMIT_S
        and sampler.peak <= RSS_PEAK_LIMIT * idle,
        detail=f"{STREAMS} streams of 8 tokens at once, each from its own caller, straight to one"
        f" replica: {direct.summary()}; refusal p50 {percentile(direct, 50) * 1000:.0f} ms,"
        f" p95 {p95['direct'] * 1000:.0f} ms; the same through Envoy to {len(stack.replicas)}"
        f" replicas: {edge.summary()}; refusal p50 {percentile(edge, 50) * 1000:.0f} ms, p95"
        f" {p95['edge'] * 1000:.0f} ms (limit {REFUSAL_P95_LIMIT_S:g} s); RSS idle"
        f" {idle / 2**20:.0f} MiB, peak {sampler.peak / 2**20:.0f} MiB (limit"
        f" {RSS_PEAK_LIMIT:g}×), after {after / 2**20:.0f} MiB; replica"
        f" {'alive' if alive else 'DEAD'}",
    )


async def crowd(target: str, metadata: Callable[[str], Metadata]) -> Tally:
    """STREAMS streams at once to `target` over CHANNELS connections, caller `crowd-i` each."""
    tally = Tally()
    calls = [metadata(f"crowd-{i}") for i in range(STREAMS)]  # tokens minted before the clock
    # Each channel its own connection: gRPC would otherwise share one among the eight.
    own_connection = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(target, options=own_connection) for _ in range(CHANNELS)]
    try:
        stubs = [generation_pb2_grpc.GenerationServiceStub(c) for c in channels]
        await asyncio.gather(
            *(
                counted(
                    tally,
                    stream_text(stubs[i % CHANNELS], stream_request(i, 8), calls[i], timeout_s=300),
                )
                for i in range(STREAMS)
            )
        )
    finally:
        for channel in channels:
            await channel.close()
    return tally


def percentile(tally: Tally, q: int) -> float:
    """The q-th percentile of the refused (not OK) calls' latency, in seconds."""
    refusals = [s for s, code in zip(tally.seconds, tally.order, strict=True) if code != "OK"]
    if len(refusals) < 2:
        return refusals[0] if refusals else 0.0
    return statistics.quantiles(refusals, n=100)[q - 1]
