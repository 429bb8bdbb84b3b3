"""`seseragi worker`: a process that runs jobs from the queue and serves no calls."""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from seseragi.api.jobs_codec import JobMessages
from seseragi.cache import redis_link
from seseragi.engine.handle import EngineClient
from seseragi.jobs.store import JobStore, sample_depth_forever
from seseragi.jobs.worker import JobWorker
from seseragi.model.loader import load
from seseragi.runtime.backend import Backend
from seseragi.runtime.engines import build_engine, load_front_end, warm_up
from seseragi.settings import WorkerSettings
from seseragi.telemetry.hub import Telemetry

log = logging.getLogger(__name__)


async def work(settings: WorkerSettings) -> None:
    """Load, warm up, run jobs until SIGTERM/SIGINT; running jobs may finish within the grace.

    /metrics carries the engine and job metrics (reclaims happen in workers), as on `serve`.
    """
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    telemetry = Telemetry.start(settings)
    engine: EngineClient
    if settings.engine_process:
        loaded, engine = await load_front_end(settings)
    else:
        loaded = await asyncio.to_thread(load, settings)
        engine = await asyncio.to_thread(build_engine, loaded, settings)
    engine.start()
    engine.on_failure(stop_requested.set)  # no engine, no work: stop, leaving jobs to reclaim
    await warm_up(engine, loaded)
    engine.observe(telemetry.engine_observer())
    telemetry.model_ready(loaded.info, engine)
    store = JobStore(
        redis_link.connect(settings),
        redis_link.connect(settings, blocking_seconds=settings.heartbeat_interval_seconds),
        settings,
        telemetry.job_observer(),
    )
    sampler = asyncio.create_task(sample_depth_forever(store))
    codec = JobMessages(Backend(engine, loaded.tokenizer, loaded.info), settings)
    worker = JobWorker(store, engine, codec, settings)
    worker.start()
    telemetry.set_ready(True)
    log.info("worker ready", extra={"consumer": worker.consumer})
    await stop_requested.wait()
    telemetry.set_ready(False)
    await worker.pause()
    deadline = time.monotonic() + settings.shutdown_grace_seconds
    while (engine.stats().in_flight or worker.busy) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await worker.stop()  # jobs still running are left to be reclaimed
    sampler.cancel()
    await asyncio.gather(sampler, return_exceptions=True)
    await engine.stop()
    await store.close()
    telemetry.stop()
    log.info("worker stopped", extra={"jobs_finished": worker.finished})
