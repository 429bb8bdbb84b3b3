"""Jobs in Redis: a hash per job, a stream of events per job, and one queue stream with a group.

Every change of a job's state is one Lua script, so two workers racing on a reclaimed job can
never both complete it, and each token index enters the job's log at most once.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from seseragi.config import Settings

GROUP = "workers"
LIVE_STATES = ("queued", "running")
ENDED_STATES = ("succeeded", "failed", "cancelled")

_SUBMIT = """
if ARGV[5] ~= '' then
  local existing = redis.call('GET', KEYS[2])
  if existing then return {0, existing} end
end
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[6]) then return {-1, ''} end
local job = ARGV[1] .. 'job:' .. ARGV[2]
local msg = redis.call('XADD', KEYS[1], '*', 'job', ARGV[2])
redis.call('HSET', job, 'owner', ARGV[3], 'state', 'queued', 'request', ARGV[7],
  'started', ARGV[8], 'created_ms', ARGV[4], 'updated_ms', ARGV[4], 'tokens', 0,
  'attempts', 0, 'idempotency_key', ARGV[5], 'message_id', msg)
if ARGV[5] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[9]) end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
return {1, ARGV[2]}
"""

_BEGIN = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'running', 'updated_ms', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return 1
"""

_APPEND = """
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return -1 end
if tonumber(ARGV[1]) <= tonumber(redis.call('HGET', KEYS[1], 'tokens')) then return 0 end
redis.call('HSET', KEYS[1], 'tokens', ARGV[1], 'updated_ms', ARGV[3])
redis.call('XADD', KEYS[2], '*', 'n', ARGV[1], 'k', 'delta', 'e', ARGV[2])
return 1
"""

# ARGV: new state, event kind, event bytes, now, ttl, states it may end from (comma list),
# group, then field/value pairs to set.
_END = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return false end
if not string.find(',' .. ARGV[6] .. ',', ',' .. state .. ',', 1, true) then return state end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'updated_ms', ARGV[4])
for i = 8, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local tokens = redis.call('HGET', KEYS[1], 'tokens')
redis.call('XADD', KEYS[2], '*', 'n', tokens, 'k', ARGV[2], 'e', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
local msg = redis.call('HGET', KEYS[1], 'message_id')
redis.call('XACK', KEYS[3], ARGV[7], msg)
redis.call('XDEL', KEYS[3], msg)
return ARGV[1]
"""


class JobNotFound(Exception):
    """No such job, or it belongs to another caller (the two are not told apart)."""


class JobQueueFull(Exception):
    """The job queue holds `max_queued_jobs` jobs."""


@dataclass(frozen=True, slots=True)
class JobRecord:
    job_id: str
    owner: str
    state: str
    request: bytes
    started: bytes
    created_ms: int
    updated_ms: int
    tokens: int
    attempts: int
    idempotency_key: str
    result: bytes
    error_code: str
    error_message: str

    @classmethod
    def from_hash(cls, job_id: str, fields: dict[bytes, bytes]) -> JobRecord:
        def text(name: str) -> str:
            return fields.get(name.encode(), b"").decode()

        return cls(
            job_id=job_id,
            owner=text("owner"),
            state=text("state"),
            request=fields.get(b"request", b""),
            started=fields.get(b"started", b""),
            created_ms=int(text("created_ms") or 0),
            updated_ms=int(text("updated_ms") or 0),
            tokens=int(text("tokens") or 0),
            attempts=int(text("attempts") or 0),
            idempotency_key=text("idempotency_key"),
            result=fields.get(b"result", b""),
            error_code=text("error_code"),
            error_message=text("error_message"),
        )


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One event of a job's log; `tokens` is the generated-token count once it is applied."""

    entry_id: bytes
    tokens: int
    kind: str  # delta, final, failed or cancelled
    event: bytes


@dataclass(frozen=True, slots=True)
class Claimed:
    message_id: bytes
    job_id: str


def _fields(reply: Any) -> dict[bytes, bytes]:
    """redis-py types replies loosely; with decode_responses off a hash is bytes to bytes."""
    return cast(dict[bytes, bytes], reply)


def _bytes(reply: Any) -> bytes:
    return cast(bytes, reply)


def _entries(reply: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The entries of an XREAD/XREADGROUP reply ([[stream, [(id, fields), ...]], ...])."""
    return [(entry[0], entry[1]) for _stream, items in reply or () for entry in items if entry[1]]


def _now_ms() -> int:
    return int(time.time() * 1000)


class JobStore:
    def __init__(self, redis: Redis, blocking: Redis, settings: Settings) -> None:
        self._redis = redis
        self._blocking = blocking  # for XREAD/XREADGROUP with BLOCK
        self._prefix = settings.redis_key_prefix
        self._queue = f"{self._prefix}jobs:queue"
        self._ttl_s = settings.job_ttl_seconds
        self._max_queued = settings.max_queued_jobs
        self._submit = redis.register_script(_SUBMIT)
        self._begin = redis.register_script(_BEGIN)
        self._append = redis.register_script(_APPEND)
        self._end = redis.register_script(_END)

    async def close(self) -> None:
        await self._redis.aclose()
        await self._blocking.aclose()

    def _job(self, job_id: str) -> str:
        return f"{self._prefix}job:{job_id}"

    def _events(self, job_id: str) -> str:
        return f"{self._prefix}job:{job_id}:events"

    def _owned(self, owner: str) -> str:
        return f"{self._prefix}owner:{owner}:jobs"

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
        args += [self._max_queued, request, started, self._ttl_s]
        outcome, found = await self._submit(keys=[self._queue, idem, self._owned(owner)], args=args)
        if outcome == -1:
            raise JobQueueFull(f"the job queue is full ({self._max_queued} jobs)")
        return found.decode(), outcome == 1

    async def get(self, job_id: str, owner: str) -> JobRecord:
        fields = _fields(await self._redis.hgetall(self._job(job_id)))
        record = JobRecord.from_hash(job_id, fields) if fields else None
        if record is None or record.owner != owner:
            raise JobNotFound(f"no job {job_id!r}")
        return record

    async def page(self, owner: str, offset: int, count: int) -> tuple[list[JobRecord], bool]:
        """The owner's jobs, newest first, and whether more follow; forgets expired ones."""
        listed = await self._redis.zrevrange(self._owned(owner), offset, offset + count)
        more = len(listed) > count
        ids = [_bytes(i).decode() for i in listed[:count]]
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(self._job(job_id))
            found = [_fields(reply) for reply in await pipe.execute()]
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

    async def log(self, job_id: str, after: bytes, block_ms: int | None) -> list[LogEntry]:
        """Log entries after the entry id `after` (b"0-0": all), waiting up to block_ms for one."""
        client = self._redis if block_ms is None else self._blocking
        count = None if block_ms is None else 256
        reply = await client.xread({self._events(job_id): after}, count=count, block=block_ms)
        return [
            LogEntry(entry_id, int(fields[b"n"]), fields[b"k"].decode(), fields[b"e"])
            for entry_id, fields in _entries(reply)
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
        reclaimed: Any = await self._redis.xautoclaim(
            self._queue, GROUP, consumer, min_idle_time=visibility_ms, start_id="0-0", count=1
        )
        entries = _entries([(self._queue, reclaimed[1])])
        if not entries:
            reply = await self._blocking.xreadgroup(
                GROUP, consumer, {self._queue: ">"}, count=1, block=block_ms
            )
            entries = _entries(reply)
        if not entries:
            return None
        message_id, fields = entries[0]
        return Claimed(message_id, fields[b"job"].decode())

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
        """Mark the job running for one more attempt; None when it needs no work."""
        if not await self._begin(keys=[self._job(job_id)], args=[_now_ms()]):
            return None
        fields = _fields(await self._redis.hgetall(self._job(job_id)))
        return JobRecord.from_hash(job_id, fields)

    async def append(self, job_id: str, tokens: int, event: bytes) -> bool:
        """Log a delta once per token count; False once the job stopped running (cancelled)."""
        written = await self._append(
            keys=[self._job(job_id), self._events(job_id)], args=[tokens, event, _now_ms()]
        )
        return int(written) >= 0

    async def succeed(self, job_id: str, final: bytes, result: bytes) -> None:
        await self._finish(job_id, "succeeded", "final", final, ("running",), result=result)

    async def fail(self, job_id: str, code: str, message: str) -> None:
        fields = {"error_code": code, "error_message": message}
        await self._finish(job_id, "failed", "failed", b"", LIVE_STATES, **fields)

    async def state(self, job_id: str) -> str:
        value = await self._redis.hget(self._job(job_id), "state")
        return "" if value is None else _bytes(value).decode()

    async def _finish(
        self,
        job_id: str,
        state: str,
        kind: str,
        event: bytes,
        from_states: tuple[str, ...],
        **fields: str | bytes,
    ) -> None:
        pairs = [item for name, value in fields.items() for item in (name, value)]
        await self._end(
            keys=[self._job(job_id), self._events(job_id), self._queue],
            args=[state, kind, event, _now_ms(), self._ttl_s, ",".join(from_states), GROUP, *pairs],
        )


class JobEnded(Exception):
    """A watched job ended without a result: failed (with the code it failed with) or cancelled."""

    def __init__(self, code: str, message: str, reason: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
