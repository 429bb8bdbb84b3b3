"""SIGTERM Envoy (through the containers' graceful wrapper) while streams run through it."""

from __future__ import annotations

import asyncio
import time

from chaos.calls import Streams
from chaos.faults import every_stream_admitted
from chaos.outcome import Durations, Outcome
from chaos.stack import Stack

NAME = "Envoy SIGTERM under load"
LOAD = "streams + unary"
MUST = "in-flight streams complete"


def run(stack: Stack, durations: Durations) -> Outcome:
    edge = stack.edge
    load = Streams(edge.target, stack.metadata, durations.streams)
    facts: dict[str, float] = {}

    async def fault() -> None:
        await every_stream_admitted(stack, durations.streams)
        stopped = time.monotonic()
        edge.sigterm()
        facts["exit_code"] = await asyncio.to_thread(edge.wait_exit, 300)
        facts["drain_s"] = time.monotonic() - stopped
        edge.start()
        await asyncio.to_thread(edge.wait_routable, 120)
        facts["recover_s"] = time.monotonic() - stopped

    asyncio.run(load.run(durations.stream_tokens, unary_loops=2, during=fault))
    return Outcome(
        NAME,
        LOAD,
        MUST,
        requests=load.streams.total,
        failed=load.streams.failed,
        recover_s=facts["recover_s"],
        passed=load.streams.failed == 0 and facts["exit_code"] == 0,
        detail=f"streams: {load.streams.summary()}; Envoy drained and exited"
        f" {int(facts['exit_code'])} after {facts['drain_s']:.1f} s; unary calls beside them"
        f" (new calls are refused while Envoy is down, not counted): {load.unary.summary()};"
        " recovery = SIGTERM until a restarted Envoy routes again",
    )
