"""The shipped Redis layout under memory pressure, on real redis-servers with compose's policies:
the cache Redis evicts cache entries at its budget; the job Redis refuses new jobs, losing none."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
import yaml

from seseragi.cache import redis_link
from seseragi.jobs.store import JobQueueFull, JobStore
from seseragi_contract.v1 import generation_pb2 as pb
from tests.redis_servers import PrivateRedis
from tests.servers import REPO_ROOT, make_settings

pytestmark = pytest.mark.integration
BUDGET = "4mb"  # small stand-ins for the shipped budgets


def shipped_policy(service: str) -> str:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    command: list[str] = compose["services"][service]["command"]
    return command[command.index("--maxmemory-policy") + 1]


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[PrivateRedis]:
    policy = shipped_policy(request.param)
    private = PrivateRedis("--maxmemory", BUDGET, "--maxmemory-policy", policy)
    private.start()
    yield private
    private.kill()


@pytest.mark.parametrize("server", ["redis-cache"], indirect=True)
def test_the_cache_redis_stays_within_its_budget_by_evicting(server: PrivateRedis) -> None:
    r = redis.Redis(port=server.port)
    for i in range(200):  # 20 MB into a 4 MB budget: every write succeeds, old entries go
        r.set(f"cache:{i}", b"x" * (100 << 10))
    info = r.info()
    assert info["evicted_keys"] > 0
    assert info["used_memory"] <= 6 << 20


@pytest.mark.parametrize("server", ["redis"], indirect=True)
def test_the_job_redis_refuses_new_jobs_when_full_and_keeps_the_queued(
    server: PrivateRedis,
) -> None:
    settings = make_settings(redis_url=server.url, redis_key_prefix="j:", max_jobs_per_caller=0)
    big = pb.GenerateRequest(prompt="x" * (200 << 10)).SerializeToString()

    async def fill() -> int:
        store = JobStore(redis_link.connect(settings), redis_link.connect(settings), settings)
        await store.ensure_group()
        queued = 0
        try:
            for _ in range(100):
                await store.submit("alice", big, b"", "")
                queued += 1
        except JobQueueFull:  # the OOM refusal, as RESOURCE_EXHAUSTED: nothing was written
            return queued
        finally:
            await store.close()
        raise AssertionError("a 4 MB job Redis took 20 MB of jobs")

    queued = asyncio.run(fill())
    r = redis.Redis(port=server.port)
    assert 0 < queued == r.xlen("j:jobs:queue")
    assert r.info()["evicted_keys"] == 0
