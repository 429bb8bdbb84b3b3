"""GenerationService: validate, submit to the engine, and relay its events as responses."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc

from seseragi.api import choices, identity
from seseragi.api.convert import responses
from seseragi.api.convert.requests import (
    GenerateMessage,
    check_input,
    input_limit_violation,
    render_input,
)
from seseragi.api.errors import InvalidRequest, NotReady, abort, error_boundary
from seseragi.api.generations import CacheLookup, Generations, expand
from seseragi.cache.result_cache import ResultCache
from seseragi.engine.types import Request
from seseragi.runtime.backend import Backend
from seseragi.settings import ServeSettings
from seseragi.telemetry.calls import annotate
from seseragi.telemetry.hub import Telemetry
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc

__all__ = ["Backend", "GenerationServicer"]

log = logging.getLogger(__name__)


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    def __init__(
        self,
        settings: ServeSettings,
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
        # No header goes out before the answer: until then Envoy may still retry the call on
        # another replica when this one dies (a reset after headers reaches the caller).
        run = await self._start(request, context, headers_now=False)
        if run.cache.response is not None:
            await context.send_initial_metadata(run.headers)
            context.set_trailing_metadata(responses.response_metadata(run.cache.response))
            return run.cache.response
        gathered = choices.Gathered(len(run.requests))
        try:
            async with error_boundary(context, run.requests[0].request_id):
                async for piece in choices.events(run):
                    assert piece is not None
                    gathered.add(piece)
        finally:
            run.abort()
        await context.send_initial_metadata(run.headers)
        context.set_trailing_metadata(gathered.metadata())
        return gathered.response()

    async def GenerateStream(
        self, request: pb.GenerateStreamRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateStreamResponse]:
        run = await self._start(request, context, headers_now=True)
        if run.cache.response is not None:
            context.set_trailing_metadata(responses.response_metadata(run.cache.response))
            for cached_event in responses.replay(run.cache.response):
                yield cached_event
            return
        first = run.requests[0]
        gathered = choices.Gathered(len(run.requests))
        try:
            async with error_boundary(context, first.request_id):
                yield pb.GenerateStreamResponse(
                    started=responses.started(first, run.handles[0].queue_position)
                )
                idle_s = self._settings.heartbeat_interval_seconds
                async for piece in choices.events(run, idle_s):
                    if piece is None:
                        phase = pb.PHASE_QUEUED if run.queued else pb.PHASE_RUNNING
                        yield pb.GenerateStreamResponse(heartbeat=pb.Heartbeat(phase=phase))
                        continue
                    gathered.add(piece)
                    if isinstance(piece, pb.Delta):
                        yield pb.GenerateStreamResponse(delta=piece)
                    else:
                        if gathered.complete:
                            context.set_trailing_metadata(gathered.metadata())
                        yield pb.GenerateStreamResponse(final=piece)
        finally:
            run.abort()

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
        return responses.model_info(
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
            release = self.generations.hold_slot(
                identity.caller(context, self._settings.edge_secret)
            )
        except Exception as exc:  # noqa: BLE001 - mapped to a status by one table
            await abort(context, exc, request.request_id)
        context.add_done_callback(lambda _: release())
        try:
            parsed = await self.generations.parse(backend, request, context.time_remaining())
        except Exception as exc:  # noqa: BLE001 - mapped to a status by one table
            await abort(context, exc, request.request_id)
        return backend, parsed

    async def _start(
        self, request: GenerateMessage, context: grpc.aio.ServicerContext, *, headers_now: bool
    ) -> choices.Run:
        """Parse, look up the cache (one choice only), and admit every choice; with
        `headers_now`, send the response headers (`run.headers`) at once."""
        backend, parsed = await self._parse(request, context)
        requests = expand(parsed, request.n)
        found = CacheLookup(None, "bypass")
        if len(requests) == 1:
            who = identity.caller(context, self._settings.edge_secret)
            found = await self.generations.lookup(request, parsed, backend, who)
        run = choices.Run(self.generations, backend, requests, found)
        if headers_now:
            await context.send_initial_metadata(run.headers)
        if found.response is None:
            try:
                run.admit()
            except Exception as exc:  # noqa: BLE001 - mapped to a status by one table
                await abort(context, exc, parsed.request_id)
        annotate(request_id=parsed.request_id)
        return run
