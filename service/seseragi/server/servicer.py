"""GenerationService: validate, submit to the engine, and relay its events as messages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from seseragi.config import Settings
from seseragi.engine.async_engine import AsyncEngine, RequestHandle
from seseragi.engine.types import Failed, Finished, TextDelta
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
from seseragi.v1 import generation_pb2 as pb
from seseragi.v1 import generation_pb2_grpc

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backend:
    """Everything a call needs once the model is loaded."""

    engine: AsyncEngine
    tokenizer: TextTokenizer
    info: ModelInfo


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
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
        backend, handle, seed = await self._submit(request, context)
        text: list[str] = []
        token_ids: list[int] = []
        token_logprobs: list[pb.TokenLogprob] = []
        try:
            async with error_boundary(context, handle.request_id):
                while True:
                    event = await handle.next_event()
                    if isinstance(event, TextDelta):
                        text.append(event.text)
                        token_ids.extend(event.token_ids)
                        token_logprobs.extend(messages.logprobs(event.logprobs, backend.tokenizer))
                    elif isinstance(event, Finished):
                        context.set_trailing_metadata(messages.usage_metadata(event))
                        last = messages.final(event, handle.request_id, seed)
                        return messages.generate_response(
                            last, "".join(text), token_ids, token_logprobs
                        )
                    elif isinstance(event, Failed):
                        await abort(context, event.error, handle.request_id)
        finally:
            handle.abort()

    async def GenerateStream(
        self, request: pb.GenerateStreamRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateStreamResponse]:
        backend, handle, seed = await self._submit(request, context)
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
                        yield pb.GenerateStreamResponse(
                            delta=messages.delta(event, backend.tokenizer)
                        )
                    elif isinstance(event, Finished):
                        context.set_trailing_metadata(messages.usage_metadata(event))
                        yield pb.GenerateStreamResponse(
                            final=messages.final(event, handle.request_id, seed)
                        )
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

    async def _ready(self, context: grpc.aio.ServicerContext, request_id: str) -> Backend:
        if self._draining:
            await abort(context, NotReady("the server is shutting down"), request_id)
        if self._backend is None:
            await abort(context, NotReady("the model is still loading"), request_id)
        return self._backend

    async def _submit(
        self, request: GenerateMessage, context: grpc.aio.ServicerContext
    ) -> tuple[Backend, RequestHandle, int]:
        """Validate and admit the request, or end the call with the matching status."""
        backend = await self._ready(context, request.request_id)
        who = identity.caller(context)
        try:
            self._caller_slots.acquire(who)
        except Exception as exc:  # noqa: BLE001 - mapped to a status by one table
            await abort(context, exc, request.request_id)
        context.add_done_callback(lambda _: self._caller_slots.release(who))
        try:
            parsed = await asyncio.to_thread(
                parse_generate,
                request,
                backend.tokenizer,
                self._settings,
                backend.info.context_length,
                context.time_remaining(),
            )
            handle = backend.engine.submit(parsed)
        except Exception as exc:  # noqa: BLE001 - mapped to a status by one table
            await abort(context, exc, request.request_id)
        return backend, handle, parsed.sampling.seed
