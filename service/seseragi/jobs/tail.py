"""One reader per replica that waits on every watched job's log, so watchers hold no connection.

A blocking XREAD holds its Redis connection until it returns; one per WatchJob stream would let
thousands of watchers exhaust Redis's `maxclients`. Instead one task blocks on a single XREAD over
all watched logs and wakes the watchers of a log that grew; each then reads what it lacks with an
ordinary (pooled, bounded) command. A log first watched while the read blocks joins the next read,
at most `block_ms` later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
BLOCK_MS = 100
RETRY_AFTER_ERROR_S = 1.0


def _entry_id(value: bytes) -> tuple[int, int]:
    millis, _, seq = value.partition(b"-")
    return int(millis), int(seq or 0)


class LogTail:
    def __init__(self, reader: Redis, block_ms: int = BLOCK_MS) -> None:
        self._reader = reader  # one dedicated connection
        self._block_ms = block_ms
        self._watchers: dict[str, int] = {}  # stream key -> open watches
        self._seen: dict[str, bytes] = {}  # stream key -> last entry id the reader saw
        self._waiting: dict[str, set[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def watching(self, stream: str) -> Iterator[None]:
        """Keep `stream` in the shared read while a watch is open."""
        self._watchers[stream] = self._watchers.get(stream, 0) + 1
        try:
            yield
        finally:
            self._watchers[stream] -= 1
            if not self._watchers[stream]:
                del self._watchers[stream]
                self._seen.pop(stream, None)

    async def wait(self, stream: str, after: bytes, timeout_s: float) -> bool:
        """Wait until `stream` may hold entries after `after`; False when timeout_s passed first.

        Call inside `watching(stream)`. A wake may be spurious: the caller reads and waits again.
        """
        seen = self._seen.setdefault(stream, after)
        if _entry_id(seen) > _entry_id(after):
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(stream, set()).add(waiter)
        self._ensure_reading()
        try:
            await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            return False
        finally:
            waiters = self._waiting.get(stream, set())
            waiters.discard(waiter)
            if not waiters:
                self._waiting.pop(stream, None)
        return True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._reader.aclose()

    def _ensure_reading(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._read_forever())

    async def _read_forever(self) -> None:
        while self._waiting:
            streams: dict[Any, Any] = {k: self._seen[k] for k in self._watchers if k in self._seen}
            if not streams:
                await asyncio.sleep(self._block_ms / 1000)
                continue
            try:
                reply: Any = await self._reader.xread(streams, count=64, block=self._block_ms)
            except (RedisError, OSError) as exc:
                self._fail_waiters(exc)
                await asyncio.sleep(RETRY_AFTER_ERROR_S)
                continue
            for stream, entries in reply or ():
                key = stream.decode() if isinstance(stream, bytes) else stream
                if entries and key in self._watchers:
                    self._seen[key] = entries[-1][0]
                    self._wake(key)

    def _wake(self, stream: str) -> None:
        for waiter in self._waiting.get(stream, ()):
            if not waiter.done():
                waiter.set_result(None)

    def _fail_waiters(self, exc: BaseException) -> None:
        """Redis is unreachable: every waiting watch ends UNAVAILABLE and may be resumed."""
        log.warning("job log reader: redis unreachable", extra={"error": repr(exc)})
        for waiters in self._waiting.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
