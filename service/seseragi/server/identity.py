"""Who is calling: the subject Envoy verified, or "anonymous" when no edge stands in front.

Envoy proves it set the subject header by sending a shared secret with it. With a secret
configured (SESERAGI_EDGE_SECRET), `EdgeGuard` refuses every call that lacks it, so a client
that bypasses Envoy or forges the header never reaches a handler; `caller` then only reads what
Envoy wrote. Without a secret the service trusts its network, as before the edge existed. Every
per-caller feature (limits, job ownership, logs) asks this module and nothing else.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

SUBJECT_HEADER = "x-seseragi-subject"
SECRET_HEADER = "x-seseragi-edge-secret"
ANONYMOUS = "anonymous"
OPEN_PREFIXES = ("/grpc.health.v1.Health/",)  # load balancers probe without credentials


def caller(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == SUBJECT_HEADER and isinstance(value, str) and value:
            return value
    return ANONYMOUS


class EdgeGuard(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuse with UNAUTHENTICATED any call that did not come through Envoy."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(OPEN_PREFIXES):
            return handler
        if self._proven(details.invocation_metadata or ()):
            return handler
        return _refusing(handler)

    def _proven(self, metadata: Any) -> bool:
        for key, value in metadata:
            if key == SECRET_HEADER and isinstance(value, str):
                return hmac.compare_digest(value.encode(), self._secret)
        return False


def _refusing(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that ends the call with UNAUTHENTICATED."""

    async def refuse(request: object, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "call the service through the edge")

    async def refuse_stream(
        request: object, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[None]:
        """An async generator like the stream handler it replaces: interceptors iterate it."""
        await refuse(request, context)
        yield None  # never reached: abort raises

    codecs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(refuse_stream, **codecs)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(refuse, **codecs)
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(refuse_stream, **codecs)
    return grpc.unary_unary_rpc_method_handler(refuse, **codecs)
