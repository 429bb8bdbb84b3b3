"""GenerationService: validate, submit to the engine, and relay its events as messages."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from seseragi.config import Settings
from seseragi.engine.handle import EngineClient, RequestHandle
from seseragi.engine.types import Failed, Finished, Request, TextDelta
from seseragi.model.loader import ModelInfo
from seseragi.model.tokenizer import TextTokenizer
from seseragi.server import identity, messages
from seseragi.server.caller_limits import CallerSlots
from seseragi.server.errors import InvalidRequest, NotReady, abort, error_boundary
from seseragi.server.request_parsing import (
    GenerateMessage,
    check_input,
    input_limit_violation,
    parse_generate,
    render_input,
)
from seseragi.server.result_cache import CACHE_HEADER, ResultCache, cache_key
from seseragi.telemetry.calls import annotate
from seseragi.telemetry.hub import Telemetry
from seseragi.v1 import generation_pb2 as pb
from seseragi.v1 import generation_pb2_grpc

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backend:
    """Everything a call needs once the model is loaded."""

    engine: EngineClient
    tokenizer: TextTokenizer
    info: ModelInfo

    async def parse(
        self, request: GenerateMessage, settings: Settings, time_remaining: float | None
    ) -> Request:
        """Validate, render and tokenize off the event loop (tokenizing long inputs blocks)."""
        return await asyncio.to_thread(
            parse_generate,
            request,
            self.tokenizer,
            settings,
            self.info.context_length,
            time_remaining,
        )


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    def __init__(
        self,
        settings: Settings,
        telemetry: Telemetry | None = None,
        results: ResultCache | None = None,
    ) -> None:
        self._settings = settings
        self._telemetry = telemetry
        self._results = results
        self._backend: Backend | None = None
        self._draining = False
        self._caller_slots = CallerSlots(settings.max_requests_per_caller)

    def attach(self, backend: Backend) -> None:
        """Start serving calls with a loaded model."""
        self._backend = backend

    def drain(self) -> None:
        """Refuse new calls with UNAVAILABLE; calls in flight go on."""
        self._draining = True

    async def Generate(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> pb.GenerateResponse:
        backend, parsed = await self._parse(request, context)
        key = self._cache_key(request, parsed, backend)
        hit = await self._lookup(key, request, parsed, context)
        if hit is not None:
            context.set_trailing_metadata(messages.response_metadata(hit))
            return hit
        handle = await self._admit(backend, parsed, context)
        seed = parsed.sampling.seed
        collected = messages.Collected()
        try:
            async with error_boundary(context, handle.request_id):
                while True:
                    event = await handle.next_event()
                    if isinstance(event, TextDelta):
                        collected.add(messages.delta(event, backend.tokenizer))
                    elif isinstance(event, Finished):
                        self._observe_finished(backend, handle, event)
                        context.set_trailing_metadata(messages.usage_metadata(event))
                        response = collected.response(
                            messages.final(event, handle.request_id, seed)
                        )
                        await self._remember(key, response)
                        return response
                    elif isinstance(event, Failed):
                        await abort(context, event.error, handle.request_id)
        finally:
            handle.abort()

    async def GenerateStream(
        self, request: pb.GenerateStreamRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateStreamResponse]:
        backend, parsed = await self._parse(request, context)
        key = self._cache_key(request, parsed, backend)
        hit = await self._lookup(key, request, parsed, context)
        if hit is not None:
            context.set_trailing_metadata(messages.response_metadata(hit))
            for cached_event in messages.replay(hit):
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
                while True:
                    event = await handle.next_event(
                        timeout=self._settings.heartbeat_interval_seconds
                    )
                    if event is None:
                        phase = pb.PHASE_QUEUED if handle.is_queued else pb.PHASE_RUNNING
                        yield pb.GenerateStreamResponse(heartbeat=pb.Heartbeat(phase=phase))
                    elif isinstance(event, TextDelta):
                        piece = messages.delta(event, backend.tokenizer)
                        collected.add(piece)
                        yield pb.GenerateStreamResponse(delta=piece)
                    elif isinstance(event, Finished):
                        self._observe_finished(backend, handle, event)
                        context.set_trailing_metadata(messages.usage_metadata(event))
                        last = messages.final(event, handle.request_id, seed)
                        await self._remember(key, collected.response(last))
                        yield pb.GenerateStreamResponse(final=last)
                        return
                    else:
                        await abort(context, event.error, handle.request_id)
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

    def _observe_finished(self, backend: Backend, handle: RequestHandle, event: Finished) -> None:
        if self._telemetry is not None:
            self._telemetry.generation_finished(handle.seq, event, backend.tokenizer.decode)

    async def _ready(self, context: grpc.aio.ServicerContext, request_id: str) -> Backend:
        if self._draining:
            await abort(context, NotReady("the server is shutting down"), request_id)
        if self._backend is None:
            await abort(context, NotReady("the model is still loading"), request_id)
        return self._backend

    async def _parse(
        self, request: GenerateMessage, context: grpc.aio.ServicerContext
    ) -> tuple[Backend, Request]:
        """Validate, render and tokenize the request, or end the call with INVALID_ARGUMENT."""
        backend = await self._ready(context, request.request_id)
        annotate(request_id=request.request_id)
        who = identity.caller(context)
        try:
            self._caller_slots.acquire(who)
        except Exception as exc:  # noqa: BLE001 - mapped to a status by one table
            await abort(context, exc, request.request_id)
        context.add_done_callback(lambda _: self._caller_slots.release(who))
        try:
            parsed = await backend.parse(request, self._settings, context.time_remaining())
        except Exception as exc:  # noqa: BLE001 - mapped to a status by one table
            await abort(context, exc, request.request_id)
        return backend, parsed

    async def _admit(
        self, backend: Backend, parsed: Request, context: grpc.aio.ServicerContext
    ) -> RequestHandle:
        """Admit the request to the engine, or end the call with the matching status."""
        try:
            handle = backend.engine.submit(parsed)
        except Exception as exc:  # noqa: BLE001 - mapped to a status by one table
            await abort(context, exc, parsed.request_id)
        annotate(request_id=handle.request_id)
        return handle

    def _cache_key(self, request: GenerateMessage, parsed: Request, backend: Backend) -> str | None:
        if self._results is None or request.cache == pb.CACHE_POLICY_BYPASS:
            return None
        return cache_key(parsed, backend.info, seeded=request.sampling.HasField("seed"))

    async def _lookup(
        self,
        key: str | None,
        request: GenerateMessage,
        parsed: Request,
        context: grpc.aio.ServicerContext,
    ) -> pb.GenerateResponse | None:
        """The cached answer when there is one; says hit, miss or bypass in a response header."""
        if key is None or self._results is None:
            await context.send_initial_metadata(((CACHE_HEADER, "bypass"),))
            return None
        began = time.monotonic()
        kept = None
        if request.cache != pb.CACHE_POLICY_REFRESH:
            began_ns = time.time_ns()
            lookup = await self._results.fetch(key)
            kept = lookup.response
            if self._telemetry is not None:
                self._telemetry.cache_looked_up(began_ns, lookup.outcome)
        await context.send_initial_metadata(((CACHE_HEADER, "miss" if kept is None else "hit"),))
        if kept is None:
            return None
        elapsed = time.monotonic() - began
        return messages.from_cache(kept, parsed.request_id, parsed.sampling.seed, elapsed)

    async def _remember(self, key: str | None, response: pb.GenerateResponse) -> None:
        if key is not None and self._results is not None:
            await self._results.store(key, response)
