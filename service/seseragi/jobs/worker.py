"""The job worker: claims jobs from the queue and runs them through the same engine as live calls.

Delivery is at least once: a job stays in the queue's pending list until it ends, and its
worker renews its claim while it runs. A worker that dies goes silent, and after the visibility
timeout another worker reclaims the job and runs it again from the start; the seed was fixed at
submission, so the rerun yields the same tokens and the log only gains the ones it lacked.
After `job_max_attempts` attempts a job ends FAILED with its last error instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

from redis.exceptions import RedisError

from seseragi.engine.errors import EngineFull
from seseragi.engine.handle import EngineClient, RequestHandle
from seseragi.engine.types import Finished, Request, TextDelta
from seseragi.jobs.codec import JobCodec, Rejected
from seseragi.jobs.store import Claimed, JobRecord, JobStore
from seseragi.runtime import relay
from seseragi.settings import JobsSettings

log = logging.getLogger(__name__)
CLAIM_BLOCK_MS = 1000
ENGINE_FULL_RETRY_S = 0.2
STORE_RETRY_S = 0.25  # between tries of a running job's Redis command during an outage
T = TypeVar("T")


class JobWorker:
    def __init__(
        self, store: JobStore, engine: EngineClient, codec: JobCodec, settings: JobsSettings
    ) -> None:
        self._store = store
        self._engine = engine
        self._codec = codec
        self._settings = settings
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._renew_every_s = settings.job_visibility_timeout_seconds / 3
        self._slots = asyncio.Semaphore(settings.job_concurrency)
        self._running: set[asyncio.Task[None]] = set()
        self._claiming: asyncio.Task[None] | None = None
        self.finished = 0  # jobs this worker ended, for tests and metrics

    def start(self) -> None:
        self._claiming = asyncio.create_task(self._claim_forever())

    async def pause(self) -> None:
        """Claim no more jobs (draining); the running ones go on."""
        if self._claiming is not None:
            self._claiming.cancel()
            await asyncio.gather(self._claiming, return_exceptions=True)

    @property
    def busy(self) -> bool:
        """Whether a claimed job is still running here."""
        return bool(self._running)

    async def stop(self) -> None:
        """Stop claiming and drop running jobs; their claims lapse and other workers rerun them."""
        tasks = [t for t in (self._claiming, *self._running) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _claim_forever(self) -> None:
        await self._retrying(self._store.ensure_group)
        visibility_ms = int(self._settings.job_visibility_timeout_seconds * 1000)
        while True:
            await self._slots.acquire()
            claimed = await self._retrying(
                lambda: self._store.claim(self.consumer, visibility_ms, CLAIM_BLOCK_MS)
            )
            if claimed is None:
                self._slots.release()
                continue
            task = asyncio.create_task(self._run_claimed(claimed))
            self._running.add(task)
            task.add_done_callback(self._job_done)

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._slots.release()

    async def _retrying(self, command: Callable[[], Awaitable[T]]) -> T:
        """Run a Redis command until Redis answers; an outage pauses the worker, never ends it."""
        down = False
        while True:
            try:
                return await command()
            except (RedisError, OSError) as exc:
                if not down:
                    log.warning("job worker paused: redis unreachable", extra={"error": repr(exc)})
                    down = True
                await asyncio.sleep(1.0)

    async def _run_claimed(self, claimed: Claimed) -> None:
        try:
            record = await self._store.begin(claimed.job_id)
            if record is None:
                await self._store.settle(claimed.message_id)
                return
            await self._run(record, claimed)
            self.finished += 1
        except (RedisError, OSError) as exc:
            log.warning(
                "job left for another worker: redis unreachable",
                extra={"job_id": claimed.job_id, "error": repr(exc)},
            )
        except Exception as exc:  # noqa: BLE001 - noted as the attempt's error; retried later
            log.exception("job attempt failed", extra={"job_id": claimed.job_id})
            code, message = self._codec.failure(exc, "")
            with contextlib.suppress(RedisError, OSError):
                await self._store.note_error(claimed.job_id, code, message)

    async def _run(self, record: JobRecord, claimed: Claimed) -> None:
        try:
            parsed = await self._codec.parse(record.request)
        except Rejected as exc:
            await self._store.fail(record.job_id, exc.code, exc.message)
            return
        handle = await self._admit(parsed, claimed)
        try:
            await self._relay(record.job_id, handle, parsed, claimed)
        finally:
            handle.abort()

    async def _admit(self, parsed: Request, claimed: Claimed) -> RequestHandle:
        """Wait for room in the engine: live calls come first, jobs take what is left."""
        while True:
            try:
                return self._engine.submit(parsed)
            except EngineFull:
                await self._store.renew(self.consumer, claimed.message_id)
                await asyncio.sleep(ENGINE_FULL_RETRY_S)

    async def _relay(
        self, job_id: str, handle: RequestHandle, parsed: Request, claimed: Claimed
    ) -> None:
        """Log each delta, then the end; stop early once the job was cancelled."""
        renewed = time.monotonic()

        def holding(command: Callable[[], Awaitable[T]]) -> Awaitable[T]:
            return self._while_claimed(command, renewed)

        try:
            async for event in relay.events(handle, self._renew_every_s):
                if time.monotonic() - renewed >= self._renew_every_s:
                    await holding(partial(self._store.renew, self.consumer, claimed.message_id))
                    renewed = time.monotonic()
                    if await holding(partial(self._store.state, job_id)) != "running":
                        return
                if isinstance(event, TextDelta):
                    logged = self._codec.delta(event)
                    count = event.generated_token_count
                    if not await holding(partial(self._store.append, job_id, count, logged)):
                        return
                elif isinstance(event, Finished):
                    await holding(partial(self._succeed, job_id, event, parsed))
        except (RedisError, OSError):
            raise  # the store is down: the claim lapses and another worker reruns the job
        except Exception as exc:  # noqa: BLE001 - the engine's error, mapped by the one table
            code, message = self._codec.failure(exc, parsed.request_id)
            await self._store.fail(job_id, code, message)

    async def _while_claimed(self, command: Callable[[], Awaitable[T]], renewed: float) -> T:
        """Run a running job's Redis command, retried through a short outage for as long as the
        claim renewed at `renewed` surely holds, so a blip costs no rerun. Each command may run
        twice (its reply lost): the log takes a token count once, and a job ends once. Once the
        claim may lapse, another worker may rerun the job: this attempt gives up."""
        lapses = renewed + self._settings.job_visibility_timeout_seconds - STORE_RETRY_S
        while True:
            try:
                return await command()
            except (RedisError, OSError):
                if time.monotonic() + STORE_RETRY_S >= lapses:
                    raise
                await asyncio.sleep(STORE_RETRY_S)

    async def _succeed(self, job_id: str, event: Finished, parsed: Request) -> None:
        """End the job with the result its log holds: what watchers saw is what GetJob returns,
        even when earlier attempts wrote part of the log."""
        entries = await self._store.log(job_id, b"0-0", None)
        deltas = [entry.event for entry in entries if entry.kind == "delta"]
        final, result = self._codec.ending(deltas, event, parsed)
        await self._store.succeed(job_id, final, result)
