"""Result cache and job events become the right samples, and every label shows 0 from the start."""

from __future__ import annotations

import asyncio

import pytest

from seseragi.cache import redis_link
from seseragi.cache.result_cache import ResultCache
from seseragi.config import Settings
from seseragi.telemetry.metrics import Metrics
from seseragi.telemetry.redis_metrics import CacheMetrics, JobMetrics
from tests.redis_servers import free_port

pytestmark = pytest.mark.unit


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(latency_buckets=(0.5, 1.0), token_gap_buckets=(0.1, 1.0))


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_every_label_value_is_exported_before_any_event(metrics: Metrics) -> None:
    for outcome in ("hit", "miss", "error"):
        assert sample(metrics, "seseragi_result_cache_lookups_total", outcome=outcome) == 0
    for operation in ("get", "set"):
        assert sample(metrics, "seseragi_result_cache_errors_total", operation=operation) == 0
    for state in ("succeeded", "failed", "cancelled"):
        assert sample(metrics, "seseragi_jobs_ended_total", state=state) == 0
    assert sample(metrics, "seseragi_job_reclaims_total") == 0


def test_job_events_count(metrics: Metrics) -> None:
    observer = JobMetrics(metrics)
    observer.submitted()
    observer.submitted()
    observer.ended("succeeded")
    observer.ended("cancelled")
    observer.reclaimed()
    observer.queue_depth(3, 1000)
    assert sample(metrics, "seseragi_jobs_submitted_total") == 2
    assert sample(metrics, "seseragi_jobs_ended_total", state="succeeded") == 1
    assert sample(metrics, "seseragi_jobs_ended_total", state="cancelled") == 1
    assert sample(metrics, "seseragi_jobs_ended_total", state="failed") == 0
    assert sample(metrics, "seseragi_job_reclaims_total") == 1
    assert sample(metrics, "seseragi_job_queue_depth_jobs") == 3
    assert sample(metrics, "seseragi_job_queue_capacity_jobs") == 1000


def test_unreachable_redis_is_an_error_then_skipped_lookups_are_errors_too(
    metrics: Metrics,
) -> None:
    """Nothing listens on the port: the first lookup fails, the next is skipped (backoff)."""
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout_seconds=0.5)

    async def two_lookups() -> list[str]:
        redis = redis_link.connect(settings)
        cache = ResultCache(redis, settings, CacheMetrics(metrics))
        outcomes = [(await cache.fetch("k")).outcome, (await cache.fetch("k")).outcome]
        await redis.aclose()
        return outcomes

    assert asyncio.run(two_lookups()) == ["error", "error"]
    assert sample(metrics, "seseragi_result_cache_lookups_total", outcome="error") == 2
    assert sample(metrics, "seseragi_result_cache_errors_total", operation="get") == 1  # 1 tried
