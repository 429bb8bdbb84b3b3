"""The steps the process-fault scenarios share: wait until the load is in, then hurt the busiest
replica and bring it back, timing each part."""

from __future__ import annotations

import asyncio
import time

from chaos.stack import Stack
from chaos.waits import until, until_async


async def every_stream_admitted(stack: Stack, streams: int) -> None:
    edge = stack.edge
    await until_async(
        lambda: sum(edge.active_on(r.port) for r in stack.replicas) >= streams,
        120,
        "every stream admitted",
    )


async def signal_busiest_replica(
    stack: Stack, signum: int, exit_timeout_s: float
) -> dict[str, float]:
    """Send `signum` to the replica with the most calls, wait for its exit, restart it and wait
    until Envoy routes to it again. Facts: on_victim (its calls), exit_code, exit_s (signal to
    exit) and recover_s (signal to back in rotation)."""
    edge = stack.edge
    victim = max(stack.replicas, key=lambda r: edge.active_on(r.port))
    facts: dict[str, float] = {"on_victim": edge.active_on(victim.port)}
    signalled = time.monotonic()
    victim.signal(signum)
    facts["exit_code"] = await asyncio.to_thread(victim.wait_exit, exit_timeout_s)
    facts["exit_s"] = time.monotonic() - signalled
    victim.start()
    await asyncio.to_thread(until, lambda: edge.healthy(victim.port), 300, "back in rotation")
    facts["recover_s"] = time.monotonic() - signalled
    return facts
