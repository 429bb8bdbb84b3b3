"""SIGTERM the busiest replica under the same load: it drains, and no call fails."""

from __future__ import annotations

import asyncio
import signal
import time

from chaos.calls import Streams
from chaos.outcome import Durations, Outcome
from chaos.stack import Stack
from chaos.waits import until, until_async

NAME = "replica SIGTERM under load"
LOAD = "streams + unary"
MUST = "0 failed"


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
        stopped = time.monotonic()
        victim.signal(signal.SIGTERM)
        facts["exit_code"] = await asyncio.to_thread(victim.wait_exit, 300)
        facts["drain_s"] = time.monotonic() - stopped
        victim.start()
        await asyncio.to_thread(until, lambda: edge.healthy(victim.port), 300, "back in rotation")
        facts["recover_s"] = time.monotonic() - stopped

    asyncio.run(load.run(durations.stream_tokens, unary_loops=4, during=fault))
    failed = load.streams.failed + load.unary.failed
    return Outcome(
        NAME,
        LOAD,
        MUST,
        requests=load.streams.total + load.unary.total,
        failed=failed,
        recover_s=facts["recover_s"],
        passed=failed == 0 and facts["exit_code"] == 0,
        detail=f"streams: {load.streams.summary()}; unary: {load.unary.summary()};"
        f" {int(facts['on_victim'])} calls on the drained replica, which exited"
        f" {int(facts['exit_code'])} after {facts['drain_s']:.1f} s; recovery = SIGTERM until"
        " the restarted replica is back in rotation",
    )
