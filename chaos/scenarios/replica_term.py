"""SIGTERM the busiest replica under the same load: it drains, and no call fails."""

from __future__ import annotations

import asyncio
import signal

from chaos.calls import Streams
from chaos.faults import every_stream_admitted, signal_busiest_replica
from chaos.outcome import Durations, Outcome
from chaos.stack import Stack

NAME = "replica SIGTERM under load"
LOAD = "streams + unary"
MUST = "0 failed"


def run(stack: Stack, durations: Durations) -> Outcome:
    load = Streams(stack.edge.target, stack.metadata, durations.streams)
    facts: dict[str, float] = {}

    async def fault() -> None:
        await every_stream_admitted(stack, durations.streams)
        facts.update(await signal_busiest_replica(stack, signal.SIGTERM, 300))

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
        f" {int(facts['exit_code'])} after {facts['exit_s']:.1f} s; recovery = SIGTERM until"
        " the restarted replica is back in rotation",
    )
