"""Observers that turn result cache and job events into Prometheus samples.

They implement `seseragi.cache.result_cache.CacheObserver` and
`seseragi.jobs.observer.JobObserver`, so the cache and the job code import no metrics.
"""

from __future__ import annotations

from seseragi.telemetry.metrics import Metrics


class CacheMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def lookup(self, outcome: str) -> None:
        self._m.cache_lookups.labels(outcome).inc()

    def command_failed(self, operation: str) -> None:
        self._m.cache_errors.labels(operation).inc()


class JobMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def submitted(self) -> None:
        self._m.jobs_submitted.inc()

    def ended(self, state: str) -> None:
        self._m.jobs_ended.labels(state).inc()

    def reclaimed(self) -> None:
        self._m.job_reclaims.inc()

    def queue_depth(self, jobs: int, capacity: int) -> None:
        self._m.job_queue_depth.set(jobs)
        self._m.job_queue_capacity.set(capacity)
