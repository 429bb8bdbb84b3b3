"""The boot and drain sequence `seseragi serve` and `seseragi worker` share.

Both run telemetry, the job store with its depth sampler, an engine (a thread or a core process)
that is started, warmed up and only then observed, and a job worker; both drain alike: claim no
more jobs, wait within the grace while generations or jobs still run, then stop in order. `serve`
puts its faces around this (runtime/app.py); the worker runs it alone (runtime/worker.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from seseragi.cache import redis_link
from seseragi.engine.handle import EngineClient
from seseragi.jobs.codec import JobCodec
from seseragi.jobs.store import JobStore, sample_depth_forever
from seseragi.jobs.worker import JobWorker
from seseragi.model.loader import LoadedModel
from seseragi.runtime.backend import Backend
from seseragi.runtime.engines import warm_up
from seseragi.settings import WorkerSettings
from seseragi.telemetry.hub import Telemetry

POLL_S = 0.05  # how often a drain looks whether work is left


@dataclass(slots=True)
class Boot:
    """One process's telemetry, job store, engine and job worker, from start to stop."""

    settings: WorkerSettings
    telemetry: Telemetry
    store: JobStore
    depth_sampler: asyncio.Task[None]
    backend: Backend | None = None  # once the engine is started and warm
    worker: JobWorker | None = None

    @classmethod
    def begin(cls, settings: WorkerSettings) -> Boot:
        """What runs before the model loads: telemetry, and the job store with its depth sampler
        (the queue's depth is exported while the model loads too)."""
        telemetry = Telemetry.start(settings)
        store = JobStore(
            redis_link.connect(settings),
            redis_link.connect(settings, blocking_seconds=settings.heartbeat_interval_seconds),
            settings,
            telemetry.job_observer(),
        )
        return cls(settings, telemetry, store, asyncio.create_task(sample_depth_forever(store)))

    async def start_engine(
        self, loaded: LoadedModel, engine: EngineClient, on_failure: Callable[[], None]
    ) -> Backend:
        """Start the engine, hook its death, prove it with one generation, then observe it:
        metrics count callers' work only."""
        engine.start()
        engine.on_failure(on_failure)
        await warm_up(engine, loaded)
        engine.observe(self.telemetry.engine_observer())
        self.telemetry.model_ready(loaded.info, engine)
        self.backend = Backend(engine, loaded.tokenizer, loaded.info)
        return self.backend

    def start_jobs(self, codec: JobCodec) -> JobWorker:
        """Claim and run queued jobs on the started engine."""
        assert self.backend is not None, "start the engine first"
        self.worker = JobWorker(self.store, self.backend.engine, codec, self.settings)
        self.worker.start()
        return self.worker

    @property
    def busy(self) -> bool:
        """Whether a generation (a call's or a job's) or a claimed job still runs here."""
        running = self.backend is not None and self.backend.engine.stats().in_flight > 0
        return running or (self.worker is not None and self.worker.busy)

    async def settle(self, grace_seconds: float, notice_seconds: float = 0.0) -> float:
        """Claim no more jobs, then wait while work runs (and for at least `notice_seconds`),
        within `grace_seconds`; returns the grace's deadline (time.monotonic)."""
        if self.worker is not None:
            await self.worker.pause()
        began = time.monotonic()
        deadline = began + grace_seconds
        notice_until = began + min(notice_seconds, grace_seconds)
        while time.monotonic() < deadline and (time.monotonic() < notice_until or self.busy):
            await asyncio.sleep(POLL_S)
        return deadline

    async def stop(self) -> None:
        """Drop jobs still running (their claims lapse and other workers rerun them), then stop
        the engine, the sampler, the store and telemetry."""
        if self.worker is not None:
            await self.worker.stop()
        if self.backend is not None:
            await self.backend.engine.stop()
        self.depth_sampler.cancel()
        await asyncio.gather(self.depth_sampler, return_exceptions=True)
        await self.store.close()
        self.telemetry.stop()
