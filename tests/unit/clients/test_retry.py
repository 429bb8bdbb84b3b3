"""Backoff, jitter and which failures are retried, driven by plain functions (no server needed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2

from seseragi_client import retry
from seseragi_client.errors import SeseragiError
from seseragi_client.retry import RetryEvent, RetryPolicy

pytestmark = pytest.mark.unit
UNAVAILABLE = SeseragiError(grpc.StatusCode.UNAVAILABLE, "not ready")
INVALID = SeseragiError(grpc.StatusCode.INVALID_ARGUMENT, "bad temperature")


class Flaky:
    """Fails with the given errors in turn, then answers "ok"; counts attempts and deadlines."""

    def __init__(self, *errors: SeseragiError) -> None:
        self.errors = list(errors)
        self.seconds_left: list[float | None] = []

    def __call__(self, seconds_left: float | None) -> str:
        self.seconds_left.append(seconds_left)
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_backoff_s=0.5, multiplier=2.0, max_backoff_s=3.0)
    ceilings = [policy.backoff(n, rand=lambda: 1.0) for n in range(1, 6)]
    assert ceilings == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.backoff(4, rand=lambda: 0.0) == 0.0


def test_jitter_spreads_delays_within_the_ceiling() -> None:
    policy = RetryPolicy(initial_backoff_s=1.0, multiplier=2.0, max_backoff_s=10.0)
    delays = [policy.backoff(3) for _ in range(200)]
    assert all(0.0 <= d <= 4.0 for d in delays)
    assert len({round(d, 6) for d in delays}) > 100  # jittered, not one fixed value


def test_unavailable_is_retried_until_it_succeeds() -> None:
    flaky = Flaky(UNAVAILABLE, UNAVAILABLE)
    events: list[RetryEvent] = []
    slept: list[float] = []
    policy = RetryPolicy(max_attempts=5)
    assert retry.call(flaky, policy, None, events.append, slept.append) == "ok"
    assert len(flaky.seconds_left) == 3
    assert [e.attempt for e in events] == [1, 2]
    assert slept == [e.delay_s for e in events]
    assert flaky.seconds_left == [None, None, None]


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.INTERNAL,
    ],
)
def test_other_codes_are_raised_at_once(code: grpc.StatusCode) -> None:
    flaky = Flaky(SeseragiError(code, "no"))
    with pytest.raises(SeseragiError) as raised:
        retry.call(flaky, RetryPolicy(), None, sleep=lambda _: None)
    assert raised.value.code == code
    assert len(flaky.seconds_left) == 1


def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    flaky = Flaky(*[UNAVAILABLE] * 10)
    with pytest.raises(SeseragiError) as raised:
        retry.call(flaky, RetryPolicy(max_attempts=3), None, sleep=lambda _: None)
    assert raised.value is UNAVAILABLE
    assert len(flaky.seconds_left) == 3


def test_no_retry_policy_tries_once() -> None:
    flaky = Flaky(UNAVAILABLE)
    with pytest.raises(SeseragiError):
        retry.call(flaky, retry.NO_RETRY, None, sleep=lambda _: None)
    assert len(flaky.seconds_left) == 1


def with_retry_info(seconds: int) -> SeseragiError:
    info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds))
    return SeseragiError(grpc.StatusCode.UNAVAILABLE, "later", [info])


def test_the_servers_retry_delay_is_a_floor() -> None:
    slept: list[float] = []
    policy = RetryPolicy(initial_backoff_s=0.01, max_backoff_s=0.01)
    retry.call(Flaky(with_retry_info(2)), policy, None, sleep=slept.append)
    assert slept == [2.0]


def test_one_deadline_covers_all_attempts() -> None:
    flaky = Flaky(UNAVAILABLE)
    retry.call(flaky, RetryPolicy(initial_backoff_s=0.01), 30.0, sleep=lambda _: None)
    first, second = flaky.seconds_left
    assert first is not None and second is not None and 0 < second <= first <= 30.0


def test_no_retry_that_would_outlast_the_deadline() -> None:
    flaky = Flaky(with_retry_info(5))
    with pytest.raises(SeseragiError):
        retry.call(flaky, RetryPolicy(), 1.0, sleep=lambda _: None)
    assert len(flaky.seconds_left) == 1


class FlakyStream:
    """Each attempt yields `items[attempt]` and then fails with `errors[attempt]` if given."""

    def __init__(self, items: list[list[str]], errors: list[SeseragiError | None]) -> None:
        self.items = items
        self.errors = errors
        self.attempts = 0

    def __call__(self, seconds_left: float | None) -> Iterator[str]:
        attempt = self.attempts
        self.attempts += 1
        yield from self.items[attempt]
        if self.errors[attempt] is not None:
            raise self.errors[attempt]  # type: ignore[misc]


def test_a_stream_failing_before_its_first_event_is_reopened() -> None:
    opened = FlakyStream([[], ["a", "b"]], [UNAVAILABLE, None])
    assert list(retry.stream(opened, RetryPolicy(), None, sleep=lambda _: None)) == ["a", "b"]
    assert opened.attempts == 2


def test_a_stream_failing_after_an_event_is_not_reopened() -> None:
    opened = FlakyStream([["a"], ["a", "b"]], [UNAVAILABLE, None])
    received: list[str] = []
    with pytest.raises(SeseragiError):
        received.extend(retry.stream(opened, RetryPolicy(), None, sleep=lambda _: None))
    assert received == ["a"]  # never a repeated token
    assert opened.attempts == 1


def test_a_resumable_stream_is_reopened_after_events() -> None:
    opened = FlakyStream([["a"], ["b"]], [UNAVAILABLE, None])
    stream = retry.stream(opened, RetryPolicy(), None, resumable=True, sleep=lambda _: None)
    assert list(stream) == ["a", "b"]


def test_async_call_and_stream_retry_the_same_way() -> None:
    async def scenario() -> tuple[str, list[str]]:
        flaky = Flaky(UNAVAILABLE)

        async def once(seconds_left: float | None) -> str:
            return flaky(seconds_left)

        opened = FlakyStream([[], ["x"]], [UNAVAILABLE, None])

        async def open_stream(seconds_left: float | None) -> AsyncIterator[str]:
            for item in opened(seconds_left):
                yield item

        policy = RetryPolicy(initial_backoff_s=0.001)
        answer = await retry.acall(once, policy, None)
        items = [item async for item in retry.astream(open_stream, policy, None)]
        return answer, items

    assert asyncio.run(scenario()) == ("ok", ["x"])


def test_retry_delay_reads_retry_info() -> None:
    assert with_retry_info(3).retry_delay == timedelta(seconds=3)
    assert UNAVAILABLE.retry_delay is None
