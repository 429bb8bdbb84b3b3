"""The telemetry of one server: its metrics registry and /metrics port, tracer, interceptors."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

import grpc
from opentelemetry.sdk.trace import TracerProvider

from seseragi.engine.handle import EngineClient
from seseragi.engine.sequence import Sequence
from seseragi.engine.types import Finished
from seseragi.model.loader import ModelInfo
from seseragi.settings import WorkerSettings
from seseragi.telemetry import tracing
from seseragi.telemetry.calls import Caller, CallInterceptor, annotate, count_refused
from seseragi.telemetry.engine_metrics import EngineMetrics
from seseragi.telemetry.http_metrics import HttpMetrics
from seseragi.telemetry.metrics import Metrics, serve_metrics
from seseragi.telemetry.redis_metrics import CacheMetrics, JobMetrics

SERVICE_NAME = "seseragi"


@dataclass(slots=True)
class Telemetry:
    settings: WorkerSettings
    metrics: Metrics
    tracer_provider: TracerProvider
    exporter: WSGIServer | None = None
    model_id: str = ""

    @classmethod
    def start(cls, settings: WorkerSettings) -> Telemetry:
        metrics = Metrics(settings.metrics_latency_buckets, settings.metrics_token_gap_buckets)
        provider = tracing.tracer_provider(SERVICE_NAME, settings.otlp_endpoint)
        telemetry = cls(settings, metrics, provider)
        if settings.metrics_port >= 0:
            telemetry.exporter = serve_metrics(
                metrics, settings.metrics_host, settings.metrics_port
            )
        return telemetry

    @property
    def metrics_port(self) -> int | None:
        return None if self.exporter is None else int(self.exporter.server_port)

    def interceptors(self, caller: Caller) -> list[grpc.aio.ServerInterceptor]:
        """Tracing outermost, so the call interceptor's log line already knows the trace id."""
        return [
            tracing.rpc_interceptor(self.tracer_provider),
            CallInterceptor(self.metrics, caller),
        ]

    def call_refused(self, method: str, streaming: bool) -> None:
        """Count a call the admission gate refused before the call interceptor could."""
        count_refused(self.metrics, method, streaming)

    def http_observer(self) -> HttpMetrics:
        return HttpMetrics(self.metrics)

    def engine_observer(self) -> EngineMetrics:
        return EngineMetrics(self.metrics)

    def cache_observer(self) -> CacheMetrics:
        return CacheMetrics(self.metrics)

    def job_observer(self) -> JobMetrics:
        return JobMetrics(self.metrics)

    def cache_looked_up(self, start_ns: int, outcome: str) -> None:
        """Draw the lookup that began at `start_ns` (time.time_ns) as a span of the current RPC."""
        tracing.record_cache_lookup(self.tracer_provider, start_ns, time.time_ns(), outcome)

    def model_ready(self, info: ModelInfo, engine: EngineClient) -> None:
        self.model_id = info.model_id
        self.metrics.model_info.labels(
            info.model_id, info.dtype, info.quantization, info.device
        ).set(1)
        self.metrics.model_load_time.set(info.load_seconds)
        self.metrics.queue_capacity.set(self.settings.max_queued_requests)
        self.metrics.track_engine(engine.stats)

    def set_ready(self, ready: bool) -> None:
        self.metrics.ready.set(1 if ready else 0)

    def generation_finished(
        self, seq: Sequence, event: Finished, decode: Callable[[list[int]], str]
    ) -> None:
        """What the servicer reports once a generation ends: log fields and trace spans."""
        timings = event.timings
        if self.settings.log_prompts:
            annotate(
                prompt=decode(list(seq.request.prompt_token_ids)),
                output=decode(seq.output_token_ids),
            )
        annotate(
            request_id=seq.request.request_id,
            input_tokens=event.input_tokens,
            output_tokens=event.output_tokens,
            stop_reason=event.stop_reason.value,
            queue_s=round(timings.queue_s, 6),
            time_to_first_token_s=round(timings.time_to_first_token_s, 6),
            total_s=round(timings.total_s, 6),
        )
        tracing.record_generation(self.tracer_provider, seq, event, self.model_id)

    def stop(self) -> None:
        if self.exporter is not None:
            self.exporter.shutdown()
            self.exporter.server_close()
            self.exporter = None
        self.tracer_provider.shutdown()
