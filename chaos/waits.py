"""Bounded waits for a condition, off the event loop (the conditions ask Envoy's admin API)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def until(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Seconds until `condition()` held; TimeoutError naming `what` after `timeout_s`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(0.1)
    raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")


async def until_async(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    return await asyncio.to_thread(until, condition, timeout_s, what)
