"""2,000 streams asked of one replica at once: refusals beyond capacity, fast, memory bounded."""

from __future__ import annotations

import asyncio
import statistics
import threading

import grpc
import psutil

from chaos.calls import Tally, counted, stream_request, stream_text
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
    tally = Tally()
    channels = [grpc.aio.insecure_channel(replica.target) for _ in range(CHANNELS)]
    try:
        stubs = [generation_pb2_grpc.GenerationServiceStub(c) for c in channels]
        await asyncio.gather(
            *(
                counted(
                    tally,
                    stream_text(
                        stubs[i % CHANNELS],
                        stream_request(i, 8),
                        stack.direct(f"crowd-{i}"),
                        timeout_s=300,
                    ),
                )
                for i in range(STREAMS)
            )
        )
    finally:
        for channel in channels:
            await channel.close()
        sampler.done.set()
        sampler.join()
    refusals = [s for s, code in zip(tally.seconds, tally.order, strict=True) if code != "OK"]
    p95 = statistics.quantiles(refusals, n=20)[-1] if len(refusals) >= 2 else 0.0
    alive = replica.alive()
    after = replica.rss() if alive else 0
    only_known = set(tally.codes) <= {"OK", "RESOURCE_EXHAUSTED"}
    return Outcome(
        NAME,
        LOAD,
        MUST,
        requests=tally.total,
        failed=tally.total - tally.codes["OK"] - tally.codes["RESOURCE_EXHAUSTED"],
        passed=alive
        and only_known
        and tally.codes["RESOURCE_EXHAUSTED"] > 0
        and p95 <= REFUSAL_P95_LIMIT_S
        and sampler.peak <= RSS_PEAK_LIMIT * idle,
        detail=f"{STREAMS} streams of 8 tokens at once, straight to one replica, each from its"
        f" own caller: {tally.summary()}; refusal p95 {p95 * 1000:.0f} ms (limit"
        f" {REFUSAL_P95_LIMIT_S:g} s); RSS idle {idle / 2**20:.0f} MiB, peak"
        f" {sampler.peak / 2**20:.0f} MiB (limit {RSS_PEAK_LIMIT:g}×), after"
        f" {after / 2**20:.0f} MiB; replica {'alive' if alive else 'DEAD'}",
    )
