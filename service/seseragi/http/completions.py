"""One OpenAI completion call: plan its engine requests, run them, and shape the answer.

The request becomes one `GenerateRequest` per prompt and is parsed, limited, cached and admitted
by `Generations`, exactly as a gRPC call is; n choices run as n engine requests with derived
seeds (server/generations.py `choice_request`). The events come from the shared relay.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from seseragi.engine.async_engine import RequestHandle
from seseragi.engine.types import Request, TextDelta
from seseragi.http import convert, formatting, schemas
from seseragi.server import messages, relay
from seseragi.server.generations import Backend, CacheLookup, Generations, choice_request
from seseragi.v1 import generation_pb2 as pb

Body = schemas.ChatCompletionRequest | schemas.CompletionRequest
Event = tuple[int, pb.Delta | pb.Final]


class ModelNotFound(Exception):
    """The body names a model this server does not serve."""

    def __init__(self, model: str) -> None:
        super().__init__(f"The model {model!r} does not exist")
        self.model = model


@dataclass(slots=True)
class Call:
    """A planned call: its engine requests (one per choice, in index order) and envelope."""

    generations: Generations
    backend: Backend
    env: formatting.Envelope
    requests: list[Request]
    prompt_tokens: int
    cache: CacheLookup
    release: Callable[[], None]
    handles: list[RequestHandle]

    def close(self) -> None:
        """Stop whatever still runs (a client that went away) and give back the caller's slot."""
        for handle in self.handles:
            handle.abort()
        self.release()


async def plan(generations: Generations, body: Body, who: str, request_id: str) -> Call:
    """Validate, tokenize, look up the cache and admit; raises what the error table maps."""
    backend = generations.ready()
    if body.model != backend.info.model_id:
        raise ModelNotFound(body.model)
    chat = isinstance(body, schemas.ChatCompletionRequest)
    request_id = request_id or secrets.token_hex(12)
    if isinstance(body, schemas.ChatCompletionRequest):
        wanted = [convert.chat_request(body, request_id)]
    else:
        texts = convert.prompts(body)
        wanted = [
            convert.completion_request(
                body, text, request_id if len(texts) == 1 else f"{request_id}-p{i}"
            )
            for i, text in enumerate(texts)
        ]
    release = generations.hold_slot(who)
    try:
        parsed = [await generations.parse(backend, message, None) for message in wanted]
        requests = [choice_request(p, j) for p in parsed for j in range(max(body.n, 1))]
        cache = CacheLookup(None, "bypass")
        if len(requests) == 1:
            cache = await generations.lookup(wanted[0], parsed[0], backend)
        env = formatting.Envelope(
            id=("chatcmpl-" if chat else "cmpl-") + request_id,
            created=int(time.time()),
            model=body.model,
            fingerprint="fp_" + (backend.info.revision or "seseragi")[:12],
            chat=chat,
            logprobs=wanted[0].options.logprobs,
        )
        call = Call(
            generations,
            backend,
            env,
            requests,
            sum(len(p.prompt_token_ids) for p in parsed),
            cache,
            release,
            [],
        )
        if cache.response is None:
            admit(call)
    except BaseException:
        release()
        raise
    return call


def admit(call: Call) -> None:
    try:
        for request in call.requests:
            call.handles.append(call.generations.admit(call.backend, request))
    except BaseException:
        for handle in call.handles:
            handle.abort()
        raise


async def events(call: Call, idle_s: float | None) -> AsyncIterator[Event | None]:
    """Every choice's deltas and Final as protobuf messages, live or from the cache."""
    if call.cache.response is not None:
        for cached in messages.replay(call.cache.response)[1:]:
            yield (0, cached.delta) if cached.HasField("delta") else (0, cached.final)
        return
    collected = messages.Collected()
    async for item in relay.merged(call.handles, idle_s):
        if item is None:
            yield None
            continue
        index, event = item
        request = call.requests[index]
        if isinstance(event, TextDelta):
            piece = messages.delta(event, call.backend.tokenizer)
            piece.choice_index = index
            collected.add(piece)
            yield index, piece
            continue
        call.generations.finished(call.backend, call.handles[index], event)
        last = messages.final(event, request.request_id, request.sampling.seed)
        last.choice_index = index
        if len(call.requests) == 1:
            await call.generations.remember(call.cache.key, collected.response(last))
        yield index, last


async def collect(call: Call) -> schemas.ChatCompletion | schemas.Completion:
    choices = [formatting.Choice() for _ in call.requests]
    async for item in events(call, None):
        assert item is not None
        index, message = item
        if isinstance(message, pb.Delta):
            choices[index].add(message)
        else:
            choices[index].last = message
    return formatting.whole(call.env, choices, call.prompt_tokens)


async def stream(call: Call, idle_s: float, include_usage: bool) -> AsyncIterator[str]:
    """Server-sent events as OpenAI sends them; `finish_reason` rides on a choice's last text,
    so each delta waits for the next event of its choice before it goes out."""
    env = call.env
    if env.chat:
        for index in range(len(call.requests)):
            yield _sse(formatting.chunk(env, index, None, None, role=True))
    pending: dict[int, pb.Delta] = {}
    offsets = [0] * len(call.requests)
    completion_tokens = 0
    async for item in events(call, idle_s):
        if item is None:
            yield ": keep-alive\n\n"  # a comment: clients skip it, proxies see the stream alive
            continue
        index, message = item
        held = pending.pop(index, None)
        if isinstance(message, pb.Delta):
            if held is not None:
                yield _sse(formatting.chunk(env, index, held, None, offset=offsets[index]))
                offsets[index] += len(held.text)
            pending[index] = message
            continue
        completion_tokens += message.usage.output_tokens
        finish = formatting.finish_reason(message)
        yield _sse(formatting.chunk(env, index, held, finish, offset=offsets[index]))
    if include_usage:
        yield _sse(formatting.usage_chunk(env, call.prompt_tokens, completion_tokens))
    yield "data: [DONE]\n\n"


def _sse(obj: schemas.ChatCompletionChunk | schemas.Completion) -> str:
    return f"data: {obj.model_dump_json(exclude_none=False)}\n\n"
