"""Jobs in Redis: a hash per job, a stream of events per job, and one queue stream with a group.

Every change of a job's state is one Lua script (see `scripts`), so two workers racing on a
reclaimed job can never both complete it, and each token index enters the job's log at most once.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError, RedisError, ResponseError

from seseragi.jobs import scripts
from seseragi.jobs.observer import JobObserver, NullJobObserver
from seseragi.jobs.records import (
    CallerJobLimit,
    Claimed,
    JobEnded,
    JobNotFound,
    JobQueueFull,
    JobRecord,
    LogEntry,
    SubmitOutcomeUnknown,
    bytes_reply,
    entries_reply,
    hash_reply,
)
from seseragi.settings import JobsSettings
from seseragi.subjects import ANONYMOUS

__all__ = [
    "CallerJobLimit",
    "Claimed",
    "JobEnded",
    "JobNotFound",
    "JobQueueFull",
    "JobRecord",
    "JobStore",
    "LogEntry",
    "SubmitOutcomeUnknown",
]

GROUP = "workers"
LIVE_STATES = ("queued", "running")
ENDED_STATES = ("succeeded", "failed", "cancelled")
DEPTH_SAMPLE_S = 2.0
SILENT_WORKER = "its worker stopped responding (died, or lost Redis)"
RECLAIM_SCANS = 100  # XAUTOCLAIM calls per claim at most: 1,000 pending entries (10 per call)


LISTED_FIELDS = (
    "owner",
    "state",
    "created_ms",
    "updated_ms",
    "tokens",
    "attempts",
    "idempotency_key",
    "error_code",
    "error_message",
)
LOG_PAGE = 256


def _now_ms() -> int:
    return int(time.time() * 1000)


def _listed(reply: Any) -> dict[bytes, bytes]:
    """An HMGET of LISTED_FIELDS as a hash; empty when the job is gone."""
    values = list(reply)
    if values[0] is None:
        return {}
    return {n.encode(): v for n, v in zip(LISTED_FIELDS, values, strict=True) if v is not None}


class JobStore:
    def __init__(
        self,
        redis: Redis,
        blocking: Redis,
        settings: JobsSettings,
        observer: JobObserver | None = None,
    ) -> None:
        self._redis = redis
        self._observer = observer or NullJobObserver()
        self._blocking = blocking  # for XREAD/XREADGROUP with BLOCK
        self._prefix = settings.redis_key_prefix
        self._queue = f"{self._prefix}jobs:queue"
        self._ttl_s = settings.job_ttl_seconds
        self._max_queued = settings.max_queued_jobs
        self._max_per_caller = settings.max_jobs_per_caller
        self._submit = redis.register_script(scripts.SUBMIT)
        self._begin = redis.register_script(scripts.BEGIN)
        self._append = redis.register_script(scripts.APPEND)
        self._end = redis.register_script(scripts.END)
        self._note_error = redis.register_script(scripts.NOTE_ERROR)
        self._max_attempts = settings.job_max_attempts
        self._reclaim_from = b"0-0"  # XAUTOCLAIM's cursor: each scan goes on where the last ended

    async def close(self) -> None:
        await self._redis.aclose()
        await self._blocking.aclose()

    def _job(self, job_id: str) -> str:
        return f"{self._prefix}job:{job_id}"

    def events_key(self, job_id: str) -> str:
        """The stream holding the job's log."""
        return f"{self._prefix}job:{job_id}:events"

    def _owned(self, owner: str) -> str:
        return f"{self._prefix}owner:{owner}:jobs"

    def _live(self, owner: str) -> str:
        return f"{self._prefix}owner:{owner}:live"

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self._queue, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def submit(
        self, owner: str, request: bytes, started: bytes, idempotency_key: str
    ) -> tuple[str, bool]:
        """Queue a job; returns its id and False when the idempotency key named an earlier one."""
        job_id = secrets.token_hex(12)
        idem = f"{self._prefix}idem:{owner}:{idempotency_key}"
        args: list[str | int | bytes] = [self._prefix, job_id, owner, _now_ms(), idempotency_key]
        cap = 0 if owner == ANONYMOUS else self._max_per_caller  # no identity: the queue's cap
        args += [self._max_queued, request, started, self._ttl_s, cap]
        keys = [self._queue, idem, self._owned(owner), self._live(owner)]
        outcome, found = await self._write_once(keys, args)
        if outcome == -1:
            raise JobQueueFull(f"the job queue is full ({self._max_queued} jobs)")
        if outcome == -2:
            raise CallerJobLimit(f"caller {owner!r} already has {cap} jobs queued or running")
        if outcome == 1:
            self._observer.submitted()
        return found.decode(), outcome == 1

    async def _write_once(self, keys: list[str], args: list[str | int | bytes]) -> Any:
        """Run SUBMIT so that a failure says whether the job may exist.

        The connection is made (and pinged) first: failing then, nothing was sent and the caller
        may retry (UNAVAILABLE). Once the script is sent, a lost or late reply leaves the write
        unknown, and a retry could queue the job twice: SubmitOutcomeUnknown, not retryable.
        """
        async with self._redis.client() as connection:
            await connection.ping()  # a pooled connection Redis closed fails here, unsent
            try:
                return await self._submit(keys=keys, args=args, client=connection)
            except OutOfMemoryError as exc:  # a full job Redis (noeviction) wrote nothing
                raise JobQueueFull("the job store is out of memory") from exc
            except ResponseError:
                raise
            except (RedisError, OSError) as exc:
                raise SubmitOutcomeUnknown(
                    "the job store did not confirm the submission: it may or may not be queued;"
                    " ListJobs tells, and an idempotency_key makes submitting again safe"
                ) from exc

    async def get(self, job_id: str, owner: str) -> JobRecord:
        fields = hash_reply(await self._redis.hgetall(self._job(job_id)))
        record = JobRecord.from_hash(job_id, fields) if fields else None
        if record is None or record.owner != owner:
            raise JobNotFound(f"no job {job_id!r}")
        return record

    async def page(self, owner: str, offset: int, count: int) -> tuple[list[JobRecord], bool]:
        """The owner's jobs, newest first, and whether more follow; forgets expired ones."""
        listed = await self._redis.zrevrange(self._owned(owner), offset, offset + count)
        more = len(listed) > count
        ids = [bytes_reply(i).decode() for i in listed[:count]]
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in ids:  # never the request or result: a page may not read megabytes
                pipe.hmget(self._job(job_id), LISTED_FIELDS)
            found = [_listed(reply) for reply in await pipe.execute()]
        gone = [job_id for job_id, fields in zip(ids, found, strict=False) if not fields]
        if gone:
            await self._redis.zrem(self._owned(owner), *gone)
        records = [
            JobRecord.from_hash(job_id, fields)
            for job_id, fields in zip(ids, found, strict=False)
            if fields
        ]
        return records, more

    async def cancel(self, job_id: str, owner: str) -> JobRecord:
        await self.get(job_id, owner)
        await self._finish(job_id, "cancelled", "cancelled", b"", LIVE_STATES)
        return await self.get(job_id, owner)

    async def log(self, job_id: str, after: bytes, count: int | None = LOG_PAGE) -> list[LogEntry]:
        """Log entries after the entry id `after` (b"0-0": all), `count` at most (None: all)."""
        reply = await self._redis.xread({self.events_key(job_id): after}, count=count)
        return [
            LogEntry(entry_id, int(fields[b"n"]), fields[b"k"].decode(), fields[b"e"])
            for entry_id, fields in entries_reply(reply)
        ]

    async def claim(self, consumer: str, visibility_ms: int, block_ms: int) -> Claimed | None:
        """A job whose worker went silent for visibility_ms, else the next new one, else None."""
        try:
            return await self._claim(consumer, visibility_ms, block_ms)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self.ensure_group()  # Redis lost the queue (a restart without persistence)
            return None

    async def _claim(self, consumer: str, visibility_ms: int, block_ms: int) -> Claimed | None:
        entries = await self._reclaim(consumer, visibility_ms)
        if entries:
            self._observer.reclaimed()
        else:
            reply = await self._blocking.xreadgroup(
                GROUP, consumer, {self._queue: ">"}, count=1, block=block_ms
            )
            entries = entries_reply(reply)
            if not entries:
                return None
        message_id, fields = entries[0]
        return Claimed(message_id, fields[b"job"].decode())

    async def _reclaim(
        self, consumer: str, visibility_ms: int
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """A silent worker's job, if any: XAUTOCLAIM scans 10 pending entries per call from its
        cursor, so follow the cursor (across calls too) until a full pass, or one is found."""
        ends_left = 2 if self._reclaim_from != b"0-0" else 1  # started mid-way: wrap once
        for _ in range(RECLAIM_SCANS):
            reply: Any = await self._redis.xautoclaim(
                self._queue,
                GROUP,
                consumer,
                min_idle_time=visibility_ms,
                start_id=self._reclaim_from,
                count=1,
            )
            self._reclaim_from = reply[0]
            entries = entries_reply([(self._queue, reply[1])])
            if entries:
                return entries
            if reply[0] == b"0-0":
                ends_left -= 1
                if not ends_left:
                    break
        return []

    async def sample_depth(self) -> int:
        """Report the queue's depth (queued and running jobs) to the observer, and return it."""
        depth = int(await self._redis.xlen(self._queue))
        self._observer.queue_depth(depth, self._max_queued)
        return depth

    async def renew(self, consumer: str, message_id: bytes) -> None:
        """Tell the other workers this job's worker is alive (resets its idle time)."""
        await self._redis.xclaim(
            self._queue, GROUP, consumer, min_idle_time=0, message_ids=[message_id], justid=True
        )

    async def settle(self, message_id: bytes) -> None:
        """Drop a queue entry whose job needs no work (ended, cancelled or expired)."""
        await self._redis.xack(self._queue, GROUP, message_id)
        await self._redis.xdel(self._queue, message_id)

    async def begin(self, job_id: str) -> JobRecord | None:
        """Mark the job running for one more attempt; None when it needs no work, or when it has
        used every attempt: then it ends FAILED with its last error, for its owner to see."""
        args: list[str | int] = [_now_ms(), self._max_attempts, SILENT_WORKER]
        begun = int(await self._begin(keys=[self._job(job_id)], args=args))
        if begun == -1:
            await self._give_up(job_id)
        if begun != 1:
            return None
        fields = hash_reply(await self._redis.hgetall(self._job(job_id)))
        return JobRecord.from_hash(job_id, fields)

    async def note_error(self, job_id: str, code: str, message: str) -> None:
        """Record why the running attempt failed; the job is retried, and ends with it if not."""
        await self._note_error(keys=[self._job(job_id)], args=[code, message])

    async def _give_up(self, job_id: str) -> None:
        code, message = await self._redis.hmget(
            self._job(job_id), ["last_error_code", "last_error_message"]
        )
        last = bytes_reply(message or b"").decode() or "unknown"
        failed = f"gave up after {self._max_attempts} attempts; the last: {last}"
        await self.fail(job_id, bytes_reply(code or b"ABORTED").decode(), failed)

    async def append(self, job_id: str, tokens: int, event: bytes) -> bool:
        """Log a delta once per token count; False once the job stopped running (cancelled)."""
        written = await self._append(
            keys=[self._job(job_id), self.events_key(job_id)], args=[tokens, event, _now_ms()]
        )
        return int(written) >= 0

    async def succeed(self, job_id: str, final: bytes, result: bytes) -> None:
        await self._finish(job_id, "succeeded", "final", final, ("running",), result=result)

    async def fail(self, job_id: str, code: str, message: str) -> None:
        fields = {"error_code": code, "error_message": message}
        await self._finish(job_id, "failed", "failed", b"", LIVE_STATES, **fields)

    async def state(self, job_id: str) -> str:
        value = await self._redis.hget(self._job(job_id), "state")
        return "" if value is None else bytes_reply(value).decode()

    async def _finish(
        self,
        job_id: str,
        state: str,
        kind: str,
        event: bytes,
        from_states: tuple[str, ...],
        **fields: str | bytes,
    ) -> None:
        """End the job unless it already left `from_states`; only the call that ends it counts."""
        pairs = [item for name, value in fields.items() for item in (name, value)]
        args: list[str | bytes | int] = [state, kind, event, _now_ms(), self._ttl_s]
        args += [",".join(from_states), GROUP, self._prefix, *pairs]
        reply = await self._end(
            keys=[self._job(job_id), self.events_key(job_id), self._queue], args=args
        )
        if reply and int(reply[0]) == 1:
            self._observer.ended(state)


async def sample_depth_forever(store: JobStore, every_s: float = DEPTH_SAMPLE_S) -> None:
    """Keep the queue depth gauge fresh; Redis trouble skips a sample and never ends the loop."""
    while True:
        with contextlib.suppress(RedisError, OSError):
            await store.sample_depth()
        await asyncio.sleep(every_s)
