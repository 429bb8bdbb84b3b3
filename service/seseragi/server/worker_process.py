"""`seseragi worker`: a process that runs jobs from the queue and serves no calls."""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from seseragi.config import Settings
from seseragi.model.loader import load
from seseragi.server import redis_link
from seseragi.server.app import build_engine, warm_up
from seseragi.server.jobs.store import JobStore
from seseragi.server.jobs.worker import JobWorker
from seseragi.server.servicer import Backend

log = logging.getLogger(__name__)


async def work(settings: Settings) -> None:
    """Load, warm up, run jobs until SIGTERM/SIGINT; running jobs may finish within the grace."""
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    loaded = await asyncio.to_thread(load, settings)
    engine = build_engine(loaded, settings)
    engine.start()
    await warm_up(engine, loaded)
    store = JobStore(
        redis_link.connect(settings),
        redis_link.connect(settings, blocking_seconds=settings.heartbeat_interval_seconds),
        settings,
    )
    worker = JobWorker(store, Backend(engine, loaded.tokenizer, loaded.info), settings)
    worker.start()
    log.info("worker ready", extra={"consumer": worker.consumer})
    await stop_requested.wait()
    await worker.pause()
    deadline = time.monotonic() + settings.shutdown_grace_seconds
    while engine.stats().in_flight and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await worker.stop()
    await engine.stop()
    await store.close()
    log.info("worker stopped", extra={"jobs_finished": worker.finished})
