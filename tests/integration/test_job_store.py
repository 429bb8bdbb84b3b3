"""The job store against a private real Redis: expiry, listing cost, attempts, reclaim, submit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis

from seseragi.api.errors import to_status
from seseragi.cache import redis_link
from seseragi.config import Settings
from seseragi.jobs.store import GROUP, JobStore, SubmitOutcomeUnknown
from seseragi_contract.v1 import generation_pb2 as pb
from tests.redis_servers import PrivateRedis
from tests.servers import make_settings

pytestmark = pytest.mark.integration
PREFIX = "s:"
OWNER = "alice"


@pytest.fixture
def private() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.kill()


def settings_for(server: PrivateRedis, **overrides: object) -> Settings:
    return make_settings(redis_url=server.url, redis_key_prefix=PREFIX, **overrides)


def with_store(
    settings: Settings, body: Callable[[JobStore], Awaitable[Any]]
) -> Any:  # a fresh event loop per test, as the store's clients belong to one
    async def run() -> Any:
        store = JobStore(redis_link.connect(settings), redis_link.connect(settings), settings)
        await store.ensure_group()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(run())


async def submit(store: JobStore, key: str = "") -> str:
    request = pb.GenerateRequest(prompt="hi").SerializeToString()
    job_id, created = await store.submit(OWNER, request, pb.Started().SerializeToString(), key)
    assert created
    return job_id


def test_every_key_of_an_ended_job_expires(private: PrivateRedis) -> None:
    settings = settings_for(private, job_ttl_seconds=600)

    async def body(store: JobStore) -> str:
        job_id = await submit(store, key="order-1")
        claimed = await store.claim("w", 30_000, 10)
        assert claimed is not None and await store.begin(job_id) is not None
        await store.append(job_id, 1, b"delta")
        await store.succeed(job_id, b"final", b"result")
        return job_id

    job_id = with_store(settings, body)
    r = redis.Redis(port=private.port)
    keys = [f"{PREFIX}job:{job_id}", f"{PREFIX}job:{job_id}:events"]
    keys += [f"{PREFIX}idem:{OWNER}:order-1", f"{PREFIX}owner:{OWNER}:jobs"]
    for key in keys:
        assert 0 < r.ttl(key) <= 600, key
    assert r.xlen(f"{PREFIX}jobs:queue") == 0


def test_the_owner_index_forgets_expired_jobs(private: PrivateRedis) -> None:
    settings = settings_for(private, job_ttl_seconds=1)

    async def body(store: JobStore) -> list[str]:
        for _ in range(3):
            job_id = await submit(store)
            await store.cancel(job_id, OWNER)
        await asyncio.sleep(1.5)  # the cancelled jobs expire
        kept = await submit(store)
        return [kept]

    kept = with_store(settings, body)
    r = redis.Redis(port=private.port)
    assert [m.decode() for m in r.zrange(f"{PREFIX}owner:{OWNER}:jobs", 0, -1)] == kept
    assert r.ttl(f"{PREFIX}owner:{OWNER}:jobs") > 0


def test_listing_reads_no_request_or_result(private: PrivateRedis) -> None:
    settings = settings_for(private)
    big = b"x" * (2 << 20)

    async def body(store: JobStore) -> int:
        job_id = await submit(store)
        await store.claim("w", 30_000, 10)
        await store.begin(job_id)
        await store.succeed(job_id, b"final", big)
        sent_before = int((await store._redis.info("stats"))["total_net_output_bytes"])
        records, more = await store.page(OWNER, 0, 10)
        sent = int((await store._redis.info("stats"))["total_net_output_bytes"]) - sent_before
        assert [r.state for r in records] == ["succeeded"] and not more
        assert records[0].result == b""
        return sent

    assert with_store(settings, body) < 16 << 10  # kilobytes, not the 2 MiB result


def test_a_job_that_keeps_failing_ends_failed_with_the_last_error(private: PrivateRedis) -> None:
    settings = settings_for(private, job_max_attempts=2)

    async def body(store: JobStore) -> tuple[str, str, str, int]:
        job_id = await submit(store)
        assert await store.claim("w1", 30_000, 10) is not None
        assert await store.begin(job_id) is not None
        await store.note_error(job_id, "INTERNAL", "the first boom")
        # w1 goes silent; w2 takes the job over for the second attempt, then dies without a word
        assert await store.claim("w2", 0, 10) is not None
        assert (await store.begin(job_id)) is not None
        assert await store.claim("w3", 0, 10) is not None
        assert await store.begin(job_id) is None  # every attempt used: no third
        record = await store.get(job_id, OWNER)
        return record.state, record.error_code, record.error_message, record.attempts

    state, code, message, attempts = with_store(settings, body)
    assert (state, code, attempts) == ("failed", "ABORTED", 2)
    assert "gave up after 2 attempts" in message and "attempt 2: its worker stopped" in message


def test_the_last_noted_error_is_the_one_the_job_ends_with(private: PrivateRedis) -> None:
    settings = settings_for(private, job_max_attempts=1)

    async def body(store: JobStore) -> tuple[str, str]:
        job_id = await submit(store)
        await store.claim("w1", 30_000, 10)
        await store.begin(job_id)
        await store.note_error(job_id, "INTERNAL", "model exploded")
        await store.claim("w2", 0, 10)
        assert await store.begin(job_id) is None
        record = await store.get(job_id, OWNER)
        return record.error_code, record.error_message

    code, message = with_store(settings, body)
    assert code == "INTERNAL" and "attempt 1: model exploded" in message


def test_a_dead_workers_job_is_reclaimed_behind_many_live_ones(private: PrivateRedis) -> None:
    live_jobs = 300
    settings = settings_for(private, max_queued_jobs=live_jobs + 10, max_jobs_per_caller=0)
    queue = f"{PREFIX}jobs:queue"

    async def body(store: JobStore) -> tuple[str, str]:
        for _ in range(live_jobs):
            await submit(store)
        dead_job = await submit(store)
        r = store._redis
        taken: Any = await r.xreadgroup(GROUP, "alive", {queue: ">"}, count=live_jobs)
        assert len(taken[0][1]) == live_jobs
        await r.xreadgroup(GROUP, "dead", {queue: ">"}, count=1)
        await asyncio.sleep(0.4)
        ids = [message_id for message_id, _ in taken[0][1]]
        await r.xclaim(queue, GROUP, "alive", 0, ids, justid=True)  # renewed; "dead" is silent
        began = time.monotonic()
        claimed = await store.claim("rescuer", 300, 10)
        assert time.monotonic() - began < 2
        assert claimed is not None
        return claimed.job_id, dead_job

    found, dead_job = with_store(settings, body)
    assert found == dead_job


def test_an_unconfirmed_submission_is_aborted_not_retryable(private: PrivateRedis) -> None:
    settings = settings_for(private, redis_timeout_seconds=0.3)
    r = redis.Redis(port=private.port)

    async def body(store: JobStore) -> None:
        await submit(store)  # the script is loaded
        # Writes stall: the submission is sent, and its reply comes too late to know its fate.
        r.execute_command("CLIENT", "PAUSE", "1000", "WRITE")
        with pytest.raises(SubmitOutcomeUnknown) as unknown:
            await submit(store)
        assert to_status(unknown.value, "").code == 10  # ABORTED: Envoy and clients do not retry
        r.execute_command("CLIENT", "UNPAUSE")

    with_store(settings, body)


def test_a_submission_that_never_reached_redis_is_unavailable(private: PrivateRedis) -> None:
    settings = settings_for(private)

    async def body(store: JobStore) -> None:
        private.kill()
        with pytest.raises(redis.exceptions.ConnectionError) as down:
            await submit(store)
        assert to_status(down.value, "").code == 14  # UNAVAILABLE: nothing was written

    with_store(settings, body)
