"""Every Prometheus metric the server exports, in one registry per server.

Names follow the vLLM/TGI vocabulary with the `seseragi_` prefix, base units and `_total` on
counters; gRPC metrics follow go-grpc-prometheus, the OpenAI HTTP API's follow OpenTelemetry's HTTP
server conventions as Prometheus names them. No label ever carries a request or user id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from seseragi.engine.handle import EngineStats

log = logging.getLogger(__name__)

PHASES = ("queued", "prefill", "decode")
CACHE_OUTCOMES = ("hit", "miss", "error")
CACHE_OPERATIONS = ("get", "set")
JOB_END_STATES = ("succeeded", "failed", "cancelled")
GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")
HTTP_LABELS = ("http_request_method", "http_route")
# Whole calls, streams included: from a few milliseconds (a refusal) to minutes (a long stream).
CALL_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# Batch sizes are small integers; powers of two up to the largest sane batch.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
FORWARD_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The metric objects; the engine observer, the gRPC interceptor and the app update them."""

    def __init__(
        self, latency_buckets: tuple[float, ...], token_gap_buckets: tuple[float, ...]
    ) -> None:
        self.registry = registry = CollectorRegistry()

        def latency(name: str, doc: str, buckets: tuple[float, ...] = latency_buckets) -> Histogram:
            return Histogram(name, doc, buckets=buckets, registry=registry)

        self.time_to_first_token = latency(
            "seseragi_time_to_first_token_seconds", "Arrival to first generated token."
        )
        self.inter_token_latency = latency(
            "seseragi_inter_token_latency_seconds",
            "Gap between consecutive tokens of one request (prefill excluded).",
            token_gap_buckets,
        )
        self.e2e_latency = latency(
            "seseragi_e2e_request_latency_seconds", "Arrival to the last token."
        )
        self.queue_time = latency(
            "seseragi_request_queue_time_seconds", "Time waiting before the batch took it."
        )
        self.prefill_time = latency(
            "seseragi_request_prefill_time_seconds", "Admission to the first token."
        )
        self.decode_time = latency(
            "seseragi_request_decode_time_seconds", "First token to the last token."
        )
        self.prompt_tokens = Counter(
            "seseragi_prompt_tokens_total", "Prompt tokens prefilled.", registry=registry
        )
        self.generation_tokens = Counter(
            "seseragi_generation_tokens_total", "Tokens generated.", registry=registry
        )
        self.running = Gauge(
            "seseragi_num_requests_running", "Sequences in the running batch.", registry=registry
        )
        self.waiting = Gauge(
            "seseragi_num_requests_waiting", "Requests waiting for the batch.", registry=registry
        )
        self.queue_capacity = Gauge(
            "seseragi_queue_capacity_requests", "Most requests that may wait.", registry=registry
        )
        self.cache_usage = Gauge(
            "seseragi_kv_cache_usage_ratio",
            "KV cache slots in use (by sequences or kept for the prefix cache) over all slots.",
            registry=registry,
        )
        self.batch_size = Histogram(
            "seseragi_batch_size_requests",
            "Rows in one forward pass, by phase.",
            ["phase"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.forward_time = Histogram(
            "seseragi_batch_forward_time_seconds",
            "Duration of one forward pass, by phase.",
            ["phase"],
            buckets=FORWARD_BUCKETS,
            registry=registry,
        )
        self.finished = Counter(
            "seseragi_requests_finished_total",
            "Generations that ended normally, by stop reason.",
            ["stop_reason"],
            registry=registry,
        )
        self.failed = Counter(
            "seseragi_requests_failed_total",
            "Generations the engine could not finish, by reason.",
            ["reason"],
            registry=registry,
        )
        self.cancelled = Counter(
            "seseragi_requests_cancelled_total",
            "Generations abandoned by their caller, by the phase they were in.",
            ["phase"],
            registry=registry,
        )
        self.model_info = Gauge(
            "seseragi_model_info",
            "The served model; always 1.",
            ["model_id", "dtype", "quantization", "device"],
            registry=registry,
        )
        self.model_load_time = Gauge(
            "seseragi_model_load_time_seconds", "Time to load the model.", registry=registry
        )
        self.ready = Gauge(
            "seseragi_ready", "1 while the server reports SERVING.", registry=registry
        )
        self._define_grpc(registry)
        self._define_http(registry)
        self._define_redis(registry)

    def _define_grpc(self, registry: CollectorRegistry) -> None:
        self.grpc_started = Counter(
            "grpc_server_started_total", "RPCs started.", GRPC_LABELS, registry=registry
        )
        self.grpc_handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed, by status code.",
            (*GRPC_LABELS, "grpc_code"),
            registry=registry,
        )
        self.grpc_handling_time = Histogram(
            "grpc_server_handling_seconds",
            "RPC duration until the status is sent.",
            GRPC_LABELS,
            buckets=CALL_BUCKETS,
            registry=registry,
        )
        self.grpc_streams_in_flight = Gauge(
            "grpc_server_streams_in_flight",
            "Server-streaming and bidirectional RPCs now open.",
            GRPC_LABELS,
            registry=registry,
        )
        self.grpc_msg_sent = Counter(
            "grpc_server_msg_sent_total", "Response messages sent.", GRPC_LABELS, registry=registry
        )

    def _define_http(self, registry: CollectorRegistry) -> None:
        """OpenTelemetry's http.server.request.duration and http.server.active_requests; the
        histogram's `_count` is the request count by route and status code."""
        self.http_duration = Histogram(
            "http_server_request_duration_seconds",
            "HTTP requests until the response ended (streams: their last event), by status code.",
            (*HTTP_LABELS, "http_response_status_code"),
            buckets=CALL_BUCKETS,
            registry=registry,
        )
        self.http_active = Gauge(
            "http_server_active_requests",
            "HTTP requests now being answered, streams included.",
            HTTP_LABELS,
            registry=registry,
        )

    def _define_redis(self, registry: CollectorRegistry) -> None:
        """Result cache and job metrics; every label value exists from the start (0, not absent)."""
        self.cache_lookups = Counter(
            "seseragi_result_cache_lookups_total",
            "Result cache lookups, by outcome (error: Redis failed or was slow; served as a miss).",
            ["outcome"],
            registry=registry,
        )
        self.cache_errors = Counter(
            "seseragi_result_cache_errors_total",
            "Redis commands of the result cache that failed or timed out, by operation.",
            ["operation"],
            registry=registry,
        )
        self.jobs_submitted = Counter(
            "seseragi_jobs_submitted_total",
            "Jobs queued (a repeated idempotency key queues nothing).",
            registry=registry,
        )
        self.jobs_ended = Counter(
            "seseragi_jobs_ended_total",
            "Jobs that reached a final state here, by that state; each job counts once.",
            ["state"],
            registry=registry,
        )
        self.job_reclaims = Counter(
            "seseragi_job_reclaims_total",
            "Jobs taken over from a worker silent past the visibility timeout.",
            registry=registry,
        )
        self.job_queue_depth = Gauge(
            "seseragi_job_queue_depth_jobs",
            "Jobs queued or running in the shared queue (sampled; the same on every replica).",
            registry=registry,
        )
        self.job_queue_capacity = Gauge(
            "seseragi_job_queue_capacity_jobs",
            "Most jobs the queue holds before SubmitJob answers RESOURCE_EXHAUSTED.",
            registry=registry,
        )
        for outcome in CACHE_OUTCOMES:
            self.cache_lookups.labels(outcome)
        for operation in CACHE_OPERATIONS:
            self.cache_errors.labels(operation)
        for state in JOB_END_STATES:
            self.jobs_ended.labels(state)

    def track_engine(self, stats: Callable[[], EngineStats]) -> None:
        """Read the queue and cache figures at scrape time: always current, free on the hot path."""
        self.running.set_function(lambda: stats().running)
        self.waiting.set_function(lambda: stats().waiting)
        self.cache_usage.set_function(lambda: _ratio(stats()))
        self.registry.register(PrefixCacheCollector(stats))


def _ratio(stats: EngineStats) -> float:
    return stats.cache_tokens / stats.cache_capacity_tokens if stats.cache_capacity_tokens else 0.0


class PrefixCacheCollector(Collector):
    """Prefix-cache counters in vLLM's vocabulary (prefix_cache_queries/hits), in tokens."""

    def __init__(self, stats: Callable[[], EngineStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        yield CounterMetricFamily(
            "seseragi_prefix_cache_queries",
            "Prompt tokens looked up in the prefix cache.",
            value=stats.prefix_cache_queries,
        )
        yield CounterMetricFamily(
            "seseragi_prefix_cache_hits",
            "Prompt tokens found in the prefix cache (their prefill was skipped).",
            value=stats.prefix_cache_hits,
        )


def serve_metrics(metrics: Metrics, host: str, port: int) -> WSGIServer | None:
    """Expose /metrics on its own port; a busy port is logged, not fatal (Prometheus sees `up`)."""
    try:
        server, _ = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        log.error("metrics port unavailable; serving without /metrics", extra={"error": str(exc)})
        return None
    log.info("metrics listening", extra={"address": f"{host}:{server.server_port}"})
    return server
