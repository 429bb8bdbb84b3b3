"""Every RPC inside the one error boundary: whatever a handler lets escape ends as a mapped
status (INTERNAL with the request id for the unexpected), never UNKNOWN with a Python type.

Handlers keep their own boundaries where they know more (the request id of a running
generation); this interceptor is the floor under every method, health and reflection included.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from seseragi.api.errors import FieldViolation, InvalidRequest, error_boundary

# What a request's bytes become when they are not a message of the method's type: gRPC would
# otherwise fail the call UNKNOWN before any interceptor or handler could map it.
UNREADABLE = object()


class ErrorBoundary(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        behavior = (
            handler.unary_unary
            or handler.unary_stream
            or handler.stream_unary
            or handler.stream_stream
        )
        if handler.response_streaming:
            if not inspect.isasyncgenfunction(behavior):
                return handler  # a handler that writes with context.write: left as it is

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                async with error_boundary(context, _request_id(request)):
                    _refuse_unreadable(request)
                    async for message in behavior(request, context):
                        yield message

            return _replace(handler, stream)

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with error_boundary(context, _request_id(request)):
                _refuse_unreadable(request)
                return await behavior(request, context)

        return _replace(handler, unary)


def _refuse_unreadable(request: Any) -> None:
    if request is UNREADABLE:
        raise InvalidRequest(
            [FieldViolation("", "the request is not a valid message of this method", "UNREADABLE")]
        )


def _tolerant(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """A deserializer that gives UNREADABLE instead of raising, so the boundary can refuse it."""

    def read(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception:  # noqa: BLE001 - any parse failure is the caller's bad bytes
            return UNREADABLE

    return read


def _request_id(request: Any) -> str:
    """The caller's request id when the message carries one (a stream of requests does not)."""
    value = getattr(request, "request_id", "")
    return value if isinstance(value, str) else ""


def _replace(handler: grpc.RpcMethodHandler, behavior: Any) -> grpc.RpcMethodHandler:
    make = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(bool(handler.request_streaming), bool(handler.response_streaming))]
    deserialize = handler.request_deserializer
    if deserialize is not None and not handler.request_streaming:
        deserialize = _tolerant(deserialize)
    return make(
        behavior,
        request_deserializer=deserialize,
        response_serializer=handler.response_serializer,
    )
