"""The probes' summaries: which gaps fall in the arrival window, and TTFT first vs repeated."""

from __future__ import annotations

import pytest

from bench.metrics import RequestTiming
from bench.probes import arrival_values, conversation_values, gaps_between, gaps_ending_by


def stream(start: float, *times: float, count: int = 1) -> RequestTiming:
    return RequestTiming(start, [(t, count) for t in times])


def test_gaps_between_keeps_gaps_that_overlap_the_window() -> None:
    timing = stream(0.0, 1.0, 1.1, 1.2, 3.2, 3.3, 3.4)
    assert gaps_between([timing], 1.15, 3.0) == pytest.approx([0.1, 2.0])


def test_gaps_ending_by_stop_at_the_moment() -> None:
    timing = stream(0.0, 1.0, 1.1, 1.2, 3.2)
    assert gaps_ending_by([timing], 1.15) == pytest.approx([0.1])


def test_gaps_spread_over_the_tokens_they_brought() -> None:
    timing = stream(0.0, 1.0, 1.4, count=2)
    assert gaps_between([timing], 0.0, 2.0) == pytest.approx([0.2, 0.2])


def test_arrivals_separate_the_stall_from_the_steady_pace() -> None:
    running = [stream(0.0, *[0.1 * i for i in range(1, 11)], 3.0, 3.1)]  # stalls 2 s at 1.0
    newcomers = [stream(1.05, 2.5), stream(1.05, 2.9)]
    found = arrival_values(running, burst_at=1.05, newcomers=newcomers)
    assert found["itl_p95_before"] == pytest.approx(0.1)
    assert found["itl_max_during"] == pytest.approx(2.0)
    assert found["window_seconds"] == pytest.approx(2.9 - 1.05)
    assert found["newcomer_ttft_p50"] == pytest.approx((1.45 + 1.85) / 2)


def test_arrivals_reject_a_newcomer_without_tokens() -> None:
    with pytest.raises(ValueError, match="newcomer"):
        arrival_values([stream(0.0, 1.0)], 0.5, [RequestTiming(0.5)])


def test_conversation_compares_first_request_rest_and_second_pass() -> None:
    first = [stream(0.0, 0.9), stream(1.0, 1.3), stream(2.0, 2.5)]
    second = [stream(0.0, 0.2), stream(1.0, 1.4)]
    found = conversation_values(first, second)
    assert found["ttft_first"] == pytest.approx(0.9)
    assert found["ttft_rest_first_pass"] == pytest.approx(0.4)
    assert found["ttft_second_pass"] == pytest.approx(0.3)
