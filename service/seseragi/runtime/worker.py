"""`seseragi worker`: a process that runs jobs from the queue and serves no calls."""

from __future__ import annotations

import asyncio
import logging
import signal

from seseragi.api.jobs_codec import JobMessages
from seseragi.runtime.boot import Boot
from seseragi.runtime.engines import load_engine
from seseragi.settings import WorkerSettings

log = logging.getLogger(__name__)


async def work(settings: WorkerSettings) -> None:
    """Load, warm up, run jobs until SIGTERM/SIGINT; running jobs may finish within the grace.

    /metrics carries the engine and job metrics (reclaims happen in workers), as on `serve`.
    """
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    boot = Boot.begin(settings)
    loaded, engine = await load_engine(settings)
    # No engine, no work: stop, leaving jobs to be reclaimed.
    backend = await boot.start_engine(loaded, engine, stop_requested.set)
    worker = boot.start_jobs(JobMessages(backend, settings))
    boot.telemetry.set_ready(True)
    log.info("worker ready", extra={"consumer": worker.consumer})
    await stop_requested.wait()
    boot.telemetry.set_ready(False)
    await boot.settle(settings.shutdown_grace_seconds)
    await boot.stop()  # jobs still running are left to be reclaimed
    log.info("worker stopped", extra={"jobs_finished": worker.finished})
