"""SIGKILL the busiest replica while streams and unary calls run through Envoy."""

from __future__ import annotations

import asyncio
import signal
import time

from chaos.calls import Streams
from chaos.outcome import Durations, Outcome
from chaos.stack import Stack
from chaos.waits import until, until_async

NAME = "replica SIGKILL under 32 streams (2 replicas)"
LOAD = "streams + unary"
MUST = "only streams on the killed replica fail; every unary call succeeds through retries"


def run(stack: Stack, durations: Durations) -> Outcome:
    edge, replicas = stack.edge, stack.replicas
    load = Streams(edge.target, stack.metadata, durations.streams)
    facts: dict[str, float] = {}

    async def fault() -> None:
        await until_async(
            lambda: sum(edge.active_on(r.port) for r in replicas) >= durations.streams,
            120,
            "every stream admitted",
        )
        victim = max(replicas, key=lambda r: edge.active_on(r.port))
        facts["on_victim"] = edge.active_on(victim.port)
        killed = time.monotonic()
        victim.signal(signal.SIGKILL)
        await asyncio.to_thread(victim.wait_exit, 30)
        victim.start()
        await asyncio.to_thread(until, lambda: edge.healthy(victim.port), 300, "back in rotation")
        facts["recover_s"] = time.monotonic() - killed

    asyncio.run(load.run(durations.stream_tokens, unary_loops=4, during=fault))
    on_victim = int(facts["on_victim"])
    return Outcome(
        NAME,
        LOAD,
        MUST,
        requests=load.streams.total + load.unary.total,
        failed=load.streams.failed + load.unary.failed,
        recover_s=facts["recover_s"],
        passed=load.streams.failed <= on_victim and load.unary.failed == 0,
        detail=f"{durations.streams} streams: {load.streams.summary()} ({on_victim} calls were"
        f" on the killed replica); unary: {load.unary.summary()}; recovery = kill until the"
        " restarted replica is back in Envoy's rotation",
    )
