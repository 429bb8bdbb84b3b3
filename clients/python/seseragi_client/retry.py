"""Retries with exponential backoff and full jitter, only for UNAVAILABLE.

UNAVAILABLE means the call did not run (no ready server, a draining one, a refused connection),
so trying again is safe. Every other code is the caller's answer and is raised at once. A stream
is retried only until its first event arrived: after that a retry would repeat tokens, unless
the stream can resume where it stopped (WatchJob's `from_index`).

Written here rather than as gRPC's service-config `retryPolicy`, which cannot read `RetryInfo`
from the status details, resume a WatchJob from an index, or tell the caller about each retry.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import grpc

from seseragi_client.errors import SeseragiError

T = TypeVar("T")
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry; `max_attempts=1` turns retries off."""

    max_attempts: int = 5
    initial_backoff_s: float = 0.25
    max_backoff_s: float = 8.0
    multiplier: float = 2.0

    def backoff(self, retry_number: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds before retry `retry_number` (1, 2, ...): uniform in [0, capped exponential]."""
        ceiling = self.initial_backoff_s * self.multiplier ** (retry_number - 1)
        return rand() * min(self.max_backoff_s, ceiling)


NO_RETRY = RetryPolicy(max_attempts=1)


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """Given to an `on_retry` hook: attempt `attempt` failed with `error`; next in `delay_s`."""

    attempt: int
    error: SeseragiError
    delay_s: float


RetryHook = Callable[[RetryEvent], None]


class Deadline:
    """One deadline for a whole call, retries and their waits included."""

    def __init__(self, timeout_s: float | None, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._end = None if timeout_s is None else clock() + timeout_s

    def remaining(self) -> float | None:
        return None if self._end is None else max(self._end - self._clock(), 0.0)


def next_delay(
    policy: RetryPolicy, attempt: int, error: SeseragiError, deadline: Deadline
) -> float | None:
    """Seconds to wait before attempt `attempt + 1`, or None when the error must be raised."""
    if error.code not in RETRYABLE or attempt >= policy.max_attempts:
        return None
    delay = policy.backoff(attempt)
    asked = error.retry_delay
    if asked is not None:
        delay = max(delay, asked.total_seconds())
    remaining = deadline.remaining()
    if remaining is not None and delay >= remaining:
        return None
    return delay


def call(
    attempt_once: Callable[[float | None], T],
    policy: RetryPolicy,
    timeout_s: float | None,
    on_retry: RetryHook | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `attempt_once(seconds_left)` until it returns or raises an error not worth retrying."""
    deadline = Deadline(timeout_s)
    attempt = 1
    while True:
        try:
            return attempt_once(deadline.remaining())
        except SeseragiError as error:
            delay = _plan_retry(policy, attempt, error, deadline, on_retry)
        sleep(delay)
        attempt += 1


def stream(
    open_stream: Callable[[float | None], Iterator[T]],
    policy: RetryPolicy,
    timeout_s: float | None,
    on_retry: RetryHook | None = None,
    resumable: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[T]:
    """Yield from `open_stream(seconds_left)`, reopening it only while that repeats nothing."""
    deadline = Deadline(timeout_s)
    attempt = 1
    while True:
        received = False
        try:
            for item in open_stream(deadline.remaining()):
                received = True
                yield item
            return
        except SeseragiError as error:
            if received and not resumable:
                raise
            attempt = 1 if received else attempt
            delay = _plan_retry(policy, attempt, error, deadline, on_retry)
        sleep(delay)
        attempt += 1


async def acall(
    attempt_once: Callable[[float | None], Awaitable[T]],
    policy: RetryPolicy,
    timeout_s: float | None,
    on_retry: RetryHook | None = None,
) -> T:
    """`call` for asyncio."""
    deadline = Deadline(timeout_s)
    attempt = 1
    while True:
        try:
            return await attempt_once(deadline.remaining())
        except SeseragiError as error:
            delay = _plan_retry(policy, attempt, error, deadline, on_retry)
        await asyncio.sleep(delay)
        attempt += 1


async def astream(
    open_stream: Callable[[float | None], AsyncIterator[T]],
    policy: RetryPolicy,
    timeout_s: float | None,
    on_retry: RetryHook | None = None,
    resumable: bool = False,
) -> AsyncIterator[T]:
    """`stream` for asyncio."""
    deadline = Deadline(timeout_s)
    attempt = 1
    while True:
        received = False
        try:
            async for item in open_stream(deadline.remaining()):
                received = True
                yield item
            return
        except SeseragiError as error:
            if received and not resumable:
                raise
            attempt = 1 if received else attempt
            delay = _plan_retry(policy, attempt, error, deadline, on_retry)
        await asyncio.sleep(delay)
        attempt += 1


def _plan_retry(
    policy: RetryPolicy,
    attempt: int,
    error: SeseragiError,
    deadline: Deadline,
    on_retry: RetryHook | None,
) -> float:
    """The wait before the next attempt; re-raises `error` when there is none."""
    delay = next_delay(policy, attempt, error, deadline)
    if delay is None:
        raise error
    if on_retry is not None:
        on_retry(RetryEvent(attempt, error, delay))
    return delay
