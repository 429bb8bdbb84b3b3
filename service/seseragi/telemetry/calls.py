"""One interceptor for all four gRPC handler kinds: call metrics and one access-log line per RPC.

The record of the call in flight lives in a contextvar, so the servicer can add what only it
knows (request id, token counts, stop reason) without passing it around.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import grpc

from seseragi.telemetry.metrics import Metrics
from seseragi.telemetry.trace_context import current_trace_id

access_log = logging.getLogger("seseragi.access")
QUIET_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection")


@dataclass(slots=True)
class CallRecord:
    method: str
    caller: str
    trace_id: str
    fields: dict[str, object] = field(default_factory=dict)
    messages_sent: int = 0


_current: ContextVar[CallRecord | None] = ContextVar("seseragi_call", default=None)


def begin(method: str, caller: str) -> CallRecord:
    """Start this task's call record; each RPC runs in its own task, so nothing leaks."""
    record = CallRecord(method, caller, current_trace_id())
    _current.set(record)
    return record


def annotate(**fields: object) -> None:
    """Add fields to this call's access-log line; a no-op outside a call."""
    record = _current.get()
    if record is not None:
        record.fields.update(fields)


Caller = Callable[[grpc.aio.ServicerContext], str]


class CallInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """`caller` names who is calling; the API layer supplies it, so telemetry imports no API."""

    def __init__(self, metrics: Metrics, caller: Caller) -> None:
        self._metrics = metrics
        self._caller = caller

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        service, _, method = details.method.lstrip("/").rpartition("/")
        streaming = bool(handler.response_streaming)
        kind = _kind(bool(handler.request_streaming), streaming)
        labels = (kind, service, method)
        behavior = _behavior(handler)

        def observed(context: grpc.aio.ServicerContext) -> AbstractAsyncContextManager[CallRecord]:
            return self._observe(details.method, labels, streaming, context)

        if streaming and inspect.isasyncgenfunction(behavior):

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with observed(context) as record:
                    async for message in behavior(request, context):
                        record.messages_sent += 1
                        yield message

            return _replace(handler, stream)

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with observed(context) as record:
                response = await behavior(request, context)
                record.messages_sent += 0 if streaming else 1
                return response

        return _replace(handler, unary)

    @contextlib.asynccontextmanager
    async def _observe(
        self,
        full_method: str,
        labels: tuple[str, str, str],
        streaming: bool,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[CallRecord]:
        m = self._metrics
        record = begin(full_method, self._caller(context))
        m.grpc_started.labels(*labels).inc()
        in_flight = m.grpc_streams_in_flight.labels(*labels) if streaming else None
        if in_flight is not None:
            in_flight.inc()
        started = time.perf_counter()
        code = "UNKNOWN"
        try:
            yield record
            code = _code(context, default="OK")
        except grpc.aio.AbortError:
            code = _code(context, default="UNKNOWN")
            raise
        except (asyncio.CancelledError, GeneratorExit):
            code = "CANCELLED"  # the client went away (or the server is stopping)
            raise
        finally:
            elapsed = time.perf_counter() - started
            if in_flight is not None:
                in_flight.dec()
            m.grpc_handled.labels(*labels, code).inc()
            m.grpc_handling_time.labels(*labels).observe(elapsed)
            m.grpc_msg_sent.labels(*labels).inc(record.messages_sent)
            _log(record, labels[1], code, elapsed)


def count_refused(metrics: Metrics, full_method: str, streaming: bool) -> None:
    """A unary-request call refused RESOURCE_EXHAUSTED before this interceptor ran: counted as
    started and handled, not logged (a crowd's refusals would flood the access log)."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    labels = (_kind(False, streaming), service, method)
    metrics.grpc_started.labels(*labels).inc()
    metrics.grpc_handled.labels(*labels, "RESOURCE_EXHAUSTED").inc()


def _log(record: CallRecord, service: str, code: str, elapsed: float) -> None:
    level = logging.DEBUG if service in QUIET_SERVICES else logging.INFO
    if code in ("UNKNOWN", "INTERNAL", "DATA_LOSS"):
        level = logging.ERROR
    access_log.log(
        level,
        "rpc finished",
        extra={
            "method": record.method,
            "status": code,
            "duration_s": round(elapsed, 6),
            "caller": record.caller,
            "trace_id": record.trace_id,
            "messages_sent": record.messages_sent,
            **record.fields,
        },
    )


def _code(context: grpc.aio.ServicerContext, default: str) -> str:
    """The status the handler set (abort or set_code), else `default`."""
    code = context.code()
    return default if code is None else str(code.name)


def _kind(request_streaming: bool, response_streaming: bool) -> str:
    if request_streaming:
        return "bidi_stream" if response_streaming else "client_stream"
    return "server_stream" if response_streaming else "unary"


def _behavior(handler: grpc.RpcMethodHandler) -> Any:
    return (
        handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    )


def _replace(handler: grpc.RpcMethodHandler, behavior: Any) -> grpc.RpcMethodHandler:
    make = {
        "unary": grpc.unary_unary_rpc_method_handler,
        "server_stream": grpc.unary_stream_rpc_method_handler,
        "client_stream": grpc.stream_unary_rpc_method_handler,
        "bidi_stream": grpc.stream_stream_rpc_method_handler,
    }[_kind(bool(handler.request_streaming), bool(handler.response_streaming))]
    return make(
        behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
