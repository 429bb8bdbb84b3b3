"""Redis, the result cache kept in it, and the job queue."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from seseragi.settings.base import SeseragiSettings


class JobsSettings(SeseragiSettings):
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis for the job queue; deployments give it noeviction and AOF"
        " (docs/redis.md).",
    )
    cache_redis_url: str = Field(
        "",
        description="Redis for the result cache, where allkeys-lru may evict; empty: the job"
        " Redis's server with logical database 1 (one server has one eviction policy, so"
        " deployments run a second Redis).",
    )
    redis_max_connections: int = Field(
        32,
        ge=2,
        description="Connections one process opens to each Redis for ordinary commands; callers"
        " beyond it wait their turn instead of opening more (WatchJob shares one blocking reader).",
    )
    redis_key_prefix: str = Field(
        "seseragi:",
        description="Prefix of every Redis key (one per deployment; tests use one per run).",
    )
    redis_timeout_seconds: float = Field(
        0.5, gt=0, description="Longest wait for one Redis command before it counts as down."
    )
    result_cache: bool = Field(True, description="Cache deterministic results in Redis.")
    result_cache_ttl_seconds: int = Field(3600, ge=1, description="How long a cached result lives.")
    result_cache_max_entry_bytes: int = Field(
        256 << 10, ge=1, description="Largest result the cache stores; bigger ones are not cached."
    )
    result_cache_scope: Literal["caller", "shared"] = Field(
        "caller",
        description="caller: a cached answer serves only the verified subject that caused it, so"
        " no tenant learns another's prompts from hits or latency; shared: every caller.",
    )
    job_concurrency: int = Field(
        4, ge=0, description="Jobs this process runs at once; 0: it runs none."
    )
    max_jobs_per_caller: int = Field(
        100,
        ge=0,
        description="Jobs one verified subject may have queued or running, across replicas;"
        " 0: no cap.",
    )
    max_watches_per_caller: int = Field(
        32, ge=0, description="Open WatchJob streams per verified subject on a replica; 0: no cap."
    )
    job_visibility_timeout_seconds: float = Field(
        30.0, gt=0, description="Silence after which another worker reclaims a running job."
    )
    job_max_attempts: int = Field(
        3,
        ge=1,
        description="Attempts a job gets (its worker died or went silent); then it ends FAILED"
        " with the last error.",
    )
    job_ttl_seconds: int = Field(
        86400, ge=1, description="How long an ended job, its result and token log are kept."
    )
    max_queued_jobs: int = Field(
        1000, ge=1, description="Jobs queued or running at once; beyond it SubmitJob is refused."
    )
