"""Per-route metrics of the OpenAI HTTP API, which its access-log middleware reports into.

The gRPC face gets the same figures from its interceptor; HTTP has its own label set
(method, route template, status code) because its outcomes are status codes, not gRPC codes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from seseragi.telemetry.metrics import Metrics

CLIENT_CLOSED = 499  # nginx's code for a client that left before the response ended


class HttpMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    @contextlib.contextmanager
    def in_flight(self, method: str, route: str) -> Iterator[None]:
        """Count the request as active while the block runs, however it ends."""
        active = self._metrics.http_active.labels(method, route)
        active.inc()
        try:
            yield
        finally:
            active.dec()

    def finished(self, method: str, route: str, status: int, seconds: float) -> None:
        self._metrics.http_duration.labels(method, route, str(status)).observe(seconds)
