"""SIGKILL the busiest replica while streams and unary calls run through Envoy."""

from __future__ import annotations

import asyncio
import signal

from chaos.calls import Streams
from chaos.faults import every_stream_admitted, signal_busiest_replica
from chaos.outcome import Durations, Outcome
from chaos.stack import Stack

NAME = "replica SIGKILL under 32 streams (2 replicas)"
LOAD = "streams + unary"
MUST = "only streams on the killed replica fail; every unary call succeeds through retries"


def run(stack: Stack, durations: Durations) -> Outcome:
    load = Streams(stack.edge.target, stack.metadata, durations.streams)
    facts: dict[str, float] = {}

    async def fault() -> None:
        await every_stream_admitted(stack, durations.streams)
        facts.update(await signal_busiest_replica(stack, signal.SIGKILL, 30))

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
