"""GenerationService: validate, submit to the engine, and relay its events as messages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc

from seseragi.config import Settings
from seseragi.engine.async_engine import RequestHandle
from seseragi.engine.types import Finished, Request, TextDelta
from seseragi.server import identity, messages, relay
from seseragi.server.errors import InvalidRequest, NotReady, abort, error_boundary
from seseragi.server.generations import Backend, CacheLookup, Generations
from seseragi.server.request_parsing import (
    GenerateMessage,
    check_input,
    input_limit_violation,
    render_input,
)
from seseragi.server.result_cache import CACHE_HEADER, ResultCache
from seseragi.telemetry.calls import annotate
from seseragi.telemetry.hub import Telemetry
from seseragi.v1 import generation_pb2 as pb
from seseragi.v1 import generation_pb2_grpc

__all__ = ["Backend", "GenerationServicer"]

log = logging.getLogger(__name__)


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    def __init__(
        self,
        settings: Settings,
        telemetry: Telemetry | None = None,
        results: ResultCache | None = None,
    ) -> None:
        self._settings = settings
        self.generations = Generations(settings, telemetry, results)

    def attach(self, backend: Backend) -> None:
        """Start serving calls with a loaded model."""
        self.generations.attach(backend)

    def drain(self) -> None:
        """Refuse new calls with UNAVAILABLE; calls in flight go on."""
        self.generations.drain()

    async def Generate(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> pb.GenerateResponse:
        backend, parsed = await self._parse(request, context)
        found = await self._lookup(request, parsed, backend, context)
        if found.response is not None:
            context.set_trailing_metadata(messages.response_metadata(found.response))
            return found.response
        handle = await self._admit(backend, parsed, context)
        collected = messages.Collected()
        try:
            async with error_boundary(context, handle.request_id):
                async for event in relay.events(handle):
                    if isinstance(event, TextDelta):
                        collected.add(messages.delta(event, backend.tokenizer))
                    elif isinstance(event, Finished):
                        self.generations.finished(backend, handle, event)
                        context.set_trailing_metadata(messages.usage_metadata(event))
                        last = messages.final(event, handle.request_id, parsed.sampling.seed)
                        response = collected.response(last)
                        await self.generations.remember(found.key, response)
                        return response
        finally:
            handle.abort()
        raise AssertionError("the relay ended without a Finished event")  # pragma: no cover

    async def GenerateStream(
        self, request: pb.GenerateStreamRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateStreamResponse]:
        backend, parsed = await self._parse(request, context)
        found = await self._lookup(request, parsed, backend, context)
        if found.response is not None:
            context.set_trailing_metadata(messages.response_metadata(found.response))
            for cached_event in messages.replay(found.response):
                yield cached_event
            return
        handle = await self._admit(backend, parsed, context)
        seed = parsed.sampling.seed
        collected = messages.Collected()
        try:
            async with error_boundary(context, handle.request_id):
                yield pb.GenerateStreamResponse(
                    started=pb.Started(
                        request_id=handle.request_id,
                        input_token_count=len(handle.seq.request.prompt_token_ids),
                        seed=seed,
                        queue_position=handle.queue_position,
                    )
                )
                async for event in relay.events(handle, self._settings.heartbeat_interval_seconds):
                    if event is None:
                        phase = pb.PHASE_QUEUED if handle.is_queued else pb.PHASE_RUNNING
                        yield pb.GenerateStreamResponse(heartbeat=pb.Heartbeat(phase=phase))
                    elif isinstance(event, TextDelta):
                        piece = messages.delta(event, backend.tokenizer)
                        collected.add(piece)
                        yield pb.GenerateStreamResponse(delta=piece)
                    else:
                        self.generations.finished(backend, handle, event)
                        context.set_trailing_metadata(messages.usage_metadata(event))
                        last = messages.final(event, handle.request_id, seed)
                        await self.generations.remember(found.key, collected.response(last))
                        yield pb.GenerateStreamResponse(final=last)
        finally:
            handle.abort()

    async def Tokenize(
        self, request: pb.TokenizeRequest, context: grpc.aio.ServicerContext
    ) -> pb.TokenizeResponse:
        backend = await self._ready(context, request_id="")
        violations = check_input(request, backend.tokenizer)
        if violations:
            await abort(context, InvalidRequest(violations), "")
        rendered = await asyncio.to_thread(render_input, request, backend.tokenizer)
        too_long = input_limit_violation(rendered, self._settings, backend.info.context_length)
        return pb.TokenizeResponse(
            token_ids=rendered.token_ids,
            token_count=len(rendered.token_ids),
            within_limits=too_long is None,
            limit_violation="" if too_long is None else too_long.description,
            rendered_text=rendered.text,
        )

    async def GetModelInfo(
        self, request: pb.GetModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetModelInfoResponse:
        backend = await self._ready(context, request_id="")
        return messages.model_info(
            backend.info, self._settings, chat=backend.tokenizer.has_chat_template
        )

    async def _ready(self, context: grpc.aio.ServicerContext, request_id: str) -> Backend:
        try:
            return self.generations.ready()
        except NotReady as exc:
            await abort(context, exc, request_id)

    async def _parse(
        self, request: GenerateMessage, context: grpc.aio.ServicerContext
    ) -> tuple[Backend, Request]:
        """Validate, render and tokenize the request, or end the call with INVALID_ARGUMENT."""
        backend = await self._ready(context, request.request_id)
        annotate(request_id=request.request_id)
        try:
            release = self.generations.hold_slot(identity.caller(context))
        except Exception as exc:  # noqa: BLE001 - mapped to a status by one table
            await abort(context, exc, request.request_id)
        context.add_done_callback(lambda _: release())
        try:
            parsed = await self.generations.parse(backend, request, context.time_remaining())
        except Exception as exc:  # noqa: BLE001 - mapped to a status by one table
            await abort(context, exc, request.request_id)
        return backend, parsed

    async def _admit(
        self, backend: Backend, parsed: Request, context: grpc.aio.ServicerContext
    ) -> RequestHandle:
        """Admit the request to the engine, or end the call with the matching status."""
        try:
            return self.generations.admit(backend, parsed)
        except Exception as exc:  # noqa: BLE001 - mapped to a status by one table
            await abort(context, exc, parsed.request_id)

    async def _lookup(
        self,
        request: GenerateMessage,
        parsed: Request,
        backend: Backend,
        context: grpc.aio.ServicerContext,
    ) -> CacheLookup:
        """The cache's answer; says hit, miss or bypass in a response header."""
        found = await self.generations.lookup(request, parsed, backend)
        await context.send_initial_metadata(((CACHE_HEADER, found.outcome),))
        return found
