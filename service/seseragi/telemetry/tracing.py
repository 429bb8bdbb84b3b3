"""Traces: a span per RPC (continuing the caller's W3C traceparent) and the engine's phases.

The RPC span comes from the OpenTelemetry gRPC instrumentation's grpc.aio server interceptor;
queue wait, prefill and decode become child spans drawn afterwards from the engine's own
timestamps, so the engine thread never touches the tracer; a result cache lookup is drawn the
same way by the servicer. Spans leave the process only when
an OTLP endpoint is configured.
"""

from __future__ import annotations

import logging
import time

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from seseragi.engine.sequence import Sequence
from seseragi.engine.types import Finished

TRACER_NAME = "seseragi"
DETACH_FAILURE = "Failed to detach context"


class DropDetachFailures(logging.Filter):
    """The instrumentation opens a streaming RPC's span around an async generator; when the
    caller cancels, gRPC closes the generator in another context and OpenTelemetry logs an ERROR
    with a traceback for the token it cannot reset (open-telemetry/opentelemetry-python-contrib
    issue 2357). The span still ends; only that one message is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != DETACH_FAILURE


_detach_filter = DropDetachFailures()


def tracer_provider(service_name: str, otlp_endpoint: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    return provider


def rpc_interceptor(provider: TracerProvider) -> grpc.aio.ServerInterceptor:
    """Spans for every RPC except health checks, which a load balancer sends every few seconds."""
    logging.getLogger("opentelemetry.context").addFilter(_detach_filter)  # once: same object
    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=provider, filter_=filters.negate(filters.health_check())
    )
    return interceptor


def record_generation(
    provider: TracerProvider, seq: Sequence, event: Finished, model_id: str
) -> None:
    """GenAI attributes on the RPC span, and child spans for queue wait, prefill and decode."""
    span = trace.get_current_span()
    if not span.get_span_context().is_valid:
        return
    span.set_attributes(
        {
            "gen_ai.operation.name": "text_completion",
            "gen_ai.request.model": model_id,
            "gen_ai.usage.input_tokens": event.input_tokens,
            "gen_ai.usage.output_tokens": event.output_tokens,
            "gen_ai.response.finish_reasons": (event.stop_reason.value,),
            "seseragi.request_id": seq.request.request_id,
        }
    )
    tracer = provider.get_tracer(TRACER_NAME)
    to_epoch_ns = time.time_ns() - time.monotonic_ns()  # engine times are time.monotonic()
    timings = event.timings
    arrival = seq.arrival_time
    phases = (
        ("queue_wait", arrival, arrival + timings.queue_s),
        ("prefill", arrival + timings.queue_s, arrival + timings.time_to_first_token_s),
        ("decode", arrival + timings.time_to_first_token_s, arrival + timings.total_s),
    )
    for name, start, end in phases:
        child = tracer.start_span(name, start_time=to_epoch_ns + int(start * 1e9))
        child.end(end_time=to_epoch_ns + int(end * 1e9))


def record_cache_lookup(provider: TracerProvider, start_ns: int, end_ns: int, outcome: str) -> None:
    """A `cache lookup` child of the RPC span, with its outcome (hit, miss or error)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return
    tracer = provider.get_tracer(TRACER_NAME)
    child = tracer.start_span(
        "cache lookup", start_time=start_ns, attributes={"seseragi.cache.outcome": outcome}
    )
    child.end(end_time=end_ns)
