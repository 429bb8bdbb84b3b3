"""The admission gate: a generation call beyond this replica's running + queued capacity is
refused RESOURCE_EXHAUSTED before any other interceptor, its request's parsing or its handler
runs, so turning a crowd away costs microseconds per call instead of each refusal waiting behind
the crowd's own work on the event loop (the fault suite's admission row).

The gate only looks: the servicer still takes the slot (`Generations.hold_slot`) and refuses
the same way when calls that passed the gate together fill it first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from seseragi.api.errors import abort
from seseragi_contract.v1 import generation_pb2

_SERVICE = generation_pb2.DESCRIPTOR.services_by_name["GenerationService"].full_name
# The calls that take an engine slot, and whether each streams its response.
GATED: dict[str, bool] = {
    f"/{_SERVICE}/Generate": False,
    f"/{_SERVICE}/GenerateStream": True,
}

Refusal = Callable[[], Exception | None]  # why a new generation is refused now, or None
Refused = Callable[[str, bool], None]  # told (method, streaming) of each call refused here


class AdmissionGate(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Outermost interceptor: refuse gated calls while `refusal()` names a reason."""

    def __init__(self, refusal: Refusal, refused: Refused | None = None) -> None:
        self._refusal = refusal
        self._refused = refused

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        streaming = GATED.get(details.method)
        if streaming is None:
            return await continuation(details)
        reason = self._refusal()
        if reason is None:
            return await continuation(details)
        if self._refused is not None:
            self._refused(details.method, streaming)
        return refusing(reason, streaming=streaming)


def _unread(data: bytes) -> None:
    """A refused call's request is never parsed: its bytes cannot matter."""


def refusing(reason: Exception, *, streaming: bool) -> grpc.RpcMethodHandler:
    """A handler that ends the call with `reason`'s mapped status (and its error details)."""

    async def refuse(request: object, context: grpc.aio.ServicerContext) -> None:
        await abort(context, reason, "")

    async def refuse_stream(
        request: object, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[None]:
        await abort(context, reason, "")
        yield None  # never reached: abort raises; the yield makes this an async generator

    if streaming:
        return grpc.unary_stream_rpc_method_handler(refuse_stream, request_deserializer=_unread)
    return grpc.unary_unary_rpc_method_handler(refuse, request_deserializer=_unread)
