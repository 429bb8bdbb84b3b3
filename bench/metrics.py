"""Turns per-request token timestamps into the figures every scenario reports, computed one way."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class RequestTiming:
    """One request: when it started, and each arrival of tokens as (perf_counter time, count)."""

    start: float
    arrivals: list[tuple[float, int]] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(count for _, count in self.arrivals)

    def ttft(self) -> float | None:
        """Seconds from the request's start to its first tokens."""
        return self.arrivals[0][0] - self.start if self.arrivals else None

    def inter_token_latencies(self) -> list[float]:
        """Per-token gaps: each gap between successive arrivals divided by the tokens it brought.

        The wait before the first arrival is TTFT, not inter-token latency, so it is left out.
        A gap that brought k tokens counts k times, so every decoded token weighs the same.
        """
        latencies: list[float] = []
        for (before, _), (after, count) in zip(self.arrivals, self.arrivals[1:], strict=False):
            if count > 0:
                latencies.extend([(after - before) / count] * count)
        return latencies


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """The figures of one scenario, as printed, charted and written to results.json."""

    name: str
    label: str
    requests: int
    tokens: int
    wall_seconds: float
    tokens_per_second: float
    ttft_p50: float | None
    ttft_p95: float | None
    itl_p50: float | None
    itl_p95: float | None
    peak_rss_bytes: int
    notes: str = ""


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation, as numpy's default; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(
    name: str,
    label: str,
    timings: Sequence[RequestTiming],
    wall_seconds: float,
    peak_rss_bytes: int,
    notes: str = "",
) -> ScenarioResult:
    """Aggregate tokens/s is total generated tokens over the scenario's wall time."""
    tokens = sum(timing.tokens for timing in timings)
    ttfts = [value for timing in timings if (value := timing.ttft()) is not None]
    itls = [gap for timing in timings for gap in timing.inter_token_latencies()]
    return ScenarioResult(
        name=name,
        label=label,
        requests=len(timings),
        tokens=tokens,
        wall_seconds=wall_seconds,
        tokens_per_second=tokens / wall_seconds if wall_seconds > 0 else 0.0,
        ttft_p50=percentile(ttfts, 50),
        ttft_p95=percentile(ttfts, 95),
        itl_p50=percentile(itls, 50),
        itl_p95=percentile(itls, 95),
        peak_rss_bytes=peak_rss_bytes,
        notes=notes,
    )
