"""Who is calling: the subject Envoy verified, or "anonymous" when nothing proves one.

Envoy proves it set the subject header by sending a shared secret with it. The subject header is
honoured only on a call that carries that secret (SESERAGI_EDGE_SECRET); with a secret configured,
`EdgeGuard` also refuses every call that lacks it, so a client that bypasses Envoy never reaches
a handler. Without a secret every caller is `anonymous`, whatever header it sends: a replica
reachable without Envoy cannot be told to act for someone else. Every per-caller feature (limits,
job ownership, logs) asks this module and nothing else.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import grpc

from seseragi.subjects import ANONYMOUS

log = logging.getLogger(__name__)

SUBJECT_HEADER = "x-seseragi-subject"
SECRET_HEADER = "x-seseragi-edge-secret"
OPEN_PREFIXES = ("/grpc.health.v1.Health/",)  # load balancers probe without credentials
_ignored_logged = False


def caller(context: grpc.aio.ServicerContext, edge_secret: str) -> str:
    """The verified subject of this call, or ANONYMOUS when the call does not prove it."""
    return verified_subject(context.invocation_metadata() or (), edge_secret)


def verified_subject(metadata: Iterable[tuple[str, Any]], edge_secret: str) -> str:
    """The subject header, honoured only beside the edge secret (gRPC metadata or HTTP headers,
    lower-case keys); ANONYMOUS otherwise."""
    metadata = list(metadata)
    subject = next((v for k, v in metadata if k == SUBJECT_HEADER and isinstance(v, str)), "")
    if not subject:
        return ANONYMOUS
    if edge_secret and _proven(metadata, edge_secret.encode()):
        return subject
    _log_ignored_once()
    return ANONYMOUS


class UnguardedStart(Exception):
    """SESERAGI_REQUIRE_EDGE_SECRET is set but no edge secret is: the server must not start."""


def check_start(host: str, edge_secret: str, *, require_edge_secret: bool) -> None:
    """Refuse an unguarded start where one is required; warn loudly about one off loopback."""
    if edge_secret:
        return
    if require_edge_secret:
        raise UnguardedStart(
            "SESERAGI_REQUIRE_EDGE_SECRET is true but SESERAGI_EDGE_SECRET is empty: refusing to"
            " start a replica that cannot tell its callers apart"
        )
    if not is_loopback(host):
        log.warning(
            "IDENTITY NOT ENFORCED: serving on %s without SESERAGI_EDGE_SECRET; every caller is"
            " %r, so per-caller limits and job ownership do not separate callers. Put Envoy in"
            " front with a shared secret, or set SESERAGI_REQUIRE_EDGE_SECRET=true to refuse this.",
            host,
            ANONYMOUS,
        )


def enforced(edge_secret: str) -> bool:
    """Whether callers' identities are checked at all (GetModelInfo reports it)."""
    return bool(edge_secret)


def is_loopback(host: str) -> bool:
    """Whether `host` (an address to bind) is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _log_ignored_once() -> None:
    global _ignored_logged  # noqa: PLW0603 - one warning per process, not one per call
    if not _ignored_logged:
        _ignored_logged = True
        log.warning(
            "ignoring a client-sent %s without the edge secret: the caller is %r",
            SUBJECT_HEADER,
            ANONYMOUS,
        )


def _proven(metadata: Any, secret: bytes) -> bool:
    for key, value in metadata:
        if key == SECRET_HEADER and isinstance(value, str):
            return hmac.compare_digest(value.encode(), secret)
    return False


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
        if _proven(details.invocation_metadata or (), self._secret):
            return handler
        return _refusing(handler)


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
