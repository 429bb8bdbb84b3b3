"""The engine probes of issue 12, as pure summaries of timed streams.

(a) Arrivals: streams already decoding while a burst of long prompts arrives. A prefill that
stalls the batch shows up as large gaps between tokens of the running streams inside the window
from the burst to the moment the last newcomer got its first token.
(b) Repeated conversation: the same long system prompt with different user turns, sent one after
another, twice. A prefix cache shows up as a lower TTFT after the first request.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from bench.metrics import RequestTiming, percentile


def _gaps(timings: Sequence[RequestTiming]) -> list[tuple[float, float, int]]:
    """Every (earlier arrival, later arrival, tokens it brought) of the given streams."""
    return [
        (before, after, count)
        for timing in timings
        for (before, _), (after, count) in zip(timing.arrivals, timing.arrivals[1:], strict=False)
        if count > 0
    ]


def gaps_between(timings: Sequence[RequestTiming], start: float, end: float) -> list[float]:
    """Per-token gaps that overlap (start, end): a stall that began in the window counts whole."""
    return [
        (after - before) / count
        for before, after, count in _gaps(timings)
        if after > start and before < end
        for _ in range(count)
    ]


def gaps_ending_by(timings: Sequence[RequestTiming], moment: float) -> list[float]:
    """Per-token gaps that were over by `moment` (the steady pace before a burst)."""
    return [
        (after - before) / count
        for before, after, count in _gaps(timings)
        if after <= moment
        for _ in range(count)
    ]


def arrival_values(
    running: Sequence[RequestTiming], burst_at: float, newcomers: Sequence[RequestTiming]
) -> dict[str, float | None]:
    """ITL of the running streams before the burst and while the newcomers were prefilled."""
    firsts = [t.arrivals[0][0] for t in newcomers if t.arrivals]
    if len(firsts) != len(newcomers):
        raise ValueError("a newcomer produced no token")
    window_end = max(firsts)
    before = gaps_ending_by(running, burst_at)
    during = gaps_between(running, burst_at, window_end)
    ttfts = [value for t in newcomers if (value := t.ttft()) is not None]
    return {
        "itl_p50_before": percentile(before, 50),
        "itl_p95_before": percentile(before, 95),
        "itl_p95_during": percentile(during, 95),
        "itl_max_during": max(during) if during else None,
        "window_seconds": window_end - burst_at,
        "newcomer_ttft_p50": percentile(ttfts, 50),
    }


def conversation_values(
    first_pass: Sequence[RequestTiming], second_pass: Sequence[RequestTiming]
) -> dict[str, float | None]:
    """TTFT of the very first request, of the rest of the first pass, and of the second pass."""
    first = [value for t in first_pass if (value := t.ttft()) is not None]
    second = [value for t in second_pass if (value := t.ttft()) is not None]
    if len(first) != len(first_pass) or len(second) != len(second_pass) or not first:
        raise ValueError("a conversation request produced no token")
    return {
        "ttft_first": first[0],
        "ttft_rest_first_pass": statistics.median(first[1:]) if len(first) > 1 else None,
        "ttft_second_pass": statistics.median(second) if second else None,
    }
