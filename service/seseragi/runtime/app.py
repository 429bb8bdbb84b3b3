"""Assemble the gRPC server and run its life: bind, load, warm up, serve, drain, exit 0."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass
from functools import partial

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from seseragi.api.admission import AdmissionGate
from seseragi.api.boundary import ErrorBoundary
from seseragi.api.http.server import HttpServer
from seseragi.api.identity import EdgeGuard, caller, check_start
from seseragi.api.jobs_codec import JobMessages
from seseragi.api.jobs_servicer import JobServicer
from seseragi.api.servicer import GenerationServicer
from seseragi.cache import redis_link
from seseragi.cache.result_cache import ResultCache
from seseragi.engine.handle import EngineClient
from seseragi.jobs.tail import BLOCK_MS, LogTail
from seseragi.model.loader import LoadedModel
from seseragi.runtime.backend import Backend
from seseragi.runtime.boot import Boot
from seseragi.runtime.engines import load_engine, open_engine
from seseragi.settings import ServeSettings
from seseragi.telemetry.hub import Telemetry
from seseragi_contract.v1 import generation_pb2, generation_pb2_grpc, jobs_pb2, jobs_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = generation_pb2.DESCRIPTOR.services_by_name["GenerationService"].full_name
JOB_SERVICE_NAME = jobs_pb2.DESCRIPTOR.services_by_name["JobService"].full_name
LIVENESS = ""  # the empty name: the process is up and the port is bound


@dataclass(slots=True)
class RunningServer:
    """A started server: its faces around what it shares with `seseragi worker` (`boot`)."""

    boot: Boot
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    servicer: GenerationServicer
    jobs: JobServicer
    http: HttpServer | None = None  # the OpenAI-compatible API; None when disabled
    dead_engine: asyncio.Future[None] | None = None  # marking NOT_SERVING after an engine death
    results: ResultCache | None = None

    @property
    def telemetry(self) -> Telemetry:
        return self.boot.telemetry

    @property
    def backend(self) -> Backend | None:
        """The loaded model; None until it is loaded and warm."""
        return self.boot.backend


def rpc_capacity(settings: ServeSettings) -> int:
    """Calls the server takes at once: every generation running or queued, plus the headroom.

    Beyond it gRPC refuses a call RESOURCE_EXHAUSTED before any Python runs for it, and one
    connection opens no more streams than this, so a crowd cannot pile up unbounded work here.
    """
    return settings.max_running_requests + settings.max_queued_requests + settings.rpc_headroom


# Calls that have arrived but that the Python server has not taken from gRPC core yet. grpc.aio
# takes them one at a time, so a crowd of new streams (2,000 at once, the fault suite's admission
# row) waits there before the admission gate can refuse it. Core's default backlog (1,000, then
# dropped at random until 3,000) ends the calls it drops CANCELLED (status and message both
# "CANCELLED"), before any interceptor sees them: the ~10 % CANCELLED of that row. The gate turns
# each away in microseconds, so let the crowd wait for it instead; beyond this many, still dropped
# (soft = hard limit: no random early drop), which bounds the memory a crowd can take here: the
# row's 2,000 small calls raised the replica's peak RSS by up to ~80 MiB, so this bound is a few
# hundred MiB, about what core's own hard limit (3,000) allowed.
PENDING_CALLS = 5_000


async def start(settings: ServeSettings) -> RunningServer:
    """Bind the port and report liveness at once; the model is not loaded yet."""
    check_start(
        settings.host, settings.edge_secret, require_edge_secret=settings.require_edge_secret
    )
    boot = Boot.begin(settings)
    telemetry = boot.telemetry
    results = None
    if settings.result_cache:  # its own Redis, where eviction cannot reach the job queue
        cache_redis = redis_link.connect(settings, url=redis_link.cache_url(settings))
        results = ResultCache(cache_redis, settings, telemetry.cache_observer())
    servicer = GenerationServicer(settings, telemetry, results)
    rpc_limit = rpc_capacity(settings)
    server = grpc.aio.server(
        # The admission gate first, so a crowd's refusals cost no other interceptor's work
        # (telemetry still counts them); then telemetry, so calls the edge guard refuses are
        # counted and logged too.
        interceptors=[
            AdmissionGate(servicer.generations.refusal, telemetry.call_refused),
            *telemetry.interceptors(partial(caller, edge_secret=settings.edge_secret)),
            *([EdgeGuard(settings.edge_secret)] if settings.edge_secret else []),
            ErrorBoundary(),  # innermost: whatever escapes a handler still gets a mapped status
        ],
        options=[
            ("grpc.max_receive_message_length", settings.max_request_bytes),
            ("grpc.max_send_message_length", settings.max_response_bytes),
            ("grpc.so_reuseport", 0),
            ("grpc.max_concurrent_streams", rpc_limit),
            ("grpc.server.max_pending_requests", PENDING_CALLS),
            ("grpc.server.max_pending_requests_hard_limit", PENDING_CALLS),
        ],
        maximum_concurrent_rpcs=rpc_limit,
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    generation_pb2_grpc.add_GenerationServiceServicer_to_server(servicer, server)
    tail = LogTail(redis_link.connect_one(settings, blocking_seconds=BLOCK_MS / 1000))
    jobs = JobServicer(settings, boot.store, tail)
    jobs_pb2_grpc.add_JobServiceServicer_to_server(jobs, server)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            JOB_SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    port = server.add_insecure_port(settings.address)
    await server.start()
    await health_servicer.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
    log.info("listening", extra={"address": f"{settings.host}:{port}"})
    http = None
    if settings.http_port >= 0:
        http = await HttpServer.start(servicer.generations, settings, telemetry.http_observer())
    return RunningServer(boot, server, port, health_servicer, servicer, jobs, http, results=results)


async def become_ready(
    running: RunningServer,
    loaded: LoadedModel,
    settings: ServeSettings,
    engine: EngineClient | None = None,
) -> None:
    """Start the engine (unless given one), prove it with one generation, then report SERVING."""
    if engine is None:
        engine = await open_engine(loaded, settings)
    backend = await running.boot.start_engine(loaded, engine, lambda: _engine_died(running))
    running.servicer.attach(backend)
    running.jobs.attach(backend)
    if settings.job_concurrency > 0:
        running.boot.start_jobs(JobMessages(backend, settings))
    await running.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    running.telemetry.set_ready(True)
    log.info("ready", extra={"service": SERVICE_NAME})


def _engine_died(running: RunningServer) -> None:
    """The engine is gone for good: say so to health checks; calls already get UNAVAILABLE."""
    running.telemetry.set_ready(False)
    running.dead_engine = asyncio.ensure_future(
        running.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
    )


async def drain_and_stop(
    running: RunningServer, grace_seconds: float, notice_seconds: float = 0.0
) -> None:
    """NOT_SERVING, refuse new calls, let in-flight generations and jobs finish within the grace.

    The port stays open while draining, and for at least `notice_seconds`, so health checks keep
    answering NOT_SERVING and load balancers stop routing here; calls that still arrive get a
    retryable UNAVAILABLE instead of a refused connection. Only then does the server stop. The
    worker claims no new jobs; one still running when the grace ends is left for another
    worker to reclaim.
    """
    running.jobs.drain()
    await running.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
    running.telemetry.set_ready(False)
    running.servicer.drain()
    log.info("draining", extra={"grace_seconds": grace_seconds})
    deadline = await running.boot.settle(grace_seconds, notice_seconds)
    stopping_http = running.http.stop() if running.http is not None else asyncio.sleep(0)
    await asyncio.gather(running.server.stop(max(deadline - time.monotonic(), 0.0)), stopping_http)
    await running.boot.stop()
    await running.jobs.close()
    if running.results is not None:
        await running.results.close()
    log.info("stopped")


async def serve(settings: ServeSettings) -> None:
    """The whole life of `seseragi serve`; returns once drained after SIGTERM or SIGINT."""
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    running = await start(settings)
    loading = asyncio.create_task(_load_and_warm(running, settings))
    stopping = asyncio.create_task(stop_requested.wait())
    await asyncio.wait({loading, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if loading.done() and loading.exception() is not None:
        await running.server.stop(0)
        if running.http is not None:
            await running.http.stop()
        raise RuntimeError("the model could not be loaded") from loading.exception()
    if not loading.done():
        loading.cancel()
    await stop_requested.wait()
    await drain_and_stop(running, settings.shutdown_grace_seconds, settings.shutdown_notice_seconds)


async def _load_and_warm(running: RunningServer, settings: ServeSettings) -> None:
    loaded, engine = await load_engine(settings)
    await become_ready(running, loaded, settings, engine)
