"""One OpenAI completion call: plan its engine requests, run them, and shape the answer.

The request becomes one `GenerateRequest` per prompt and is parsed, limited, cached and admitted
by `Generations`, exactly as a gRPC call is; n choices run as n engine requests with derived
seeds (api/generations.py `choice_request`). The events come from the shared relay.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from seseragi.api import choices
from seseragi.api.errors import FieldViolation, InvalidRequest
from seseragi.api.generations import CacheLookup, Generations, expand
from seseragi.api.http import convert, formatting, schemas, structured, tool_calls
from seseragi.api.http.tool_stream import Chunk, ToolChoiceStream
from seseragi.engine.types import Request
from seseragi.runtime.backend import Backend
from seseragi_contract.v1 import generation_pb2 as pb

Body = schemas.ChatCompletionRequest | schemas.CompletionRequest


class ModelNotFound(Exception):
    """The body names a model this server does not serve."""

    def __init__(self, model: str) -> None:
        super().__init__(f"The model {model!r} does not exist")
        self.model = model


@dataclass(slots=True)
class Call:
    """A planned call: its choices (all prompts' n each, in index order) and envelope."""

    run: choices.Run
    env: formatting.Envelope
    prompt_tokens: int
    release: Callable[[], None]
    closed: bool = False

    def close(self) -> None:
        """Stop whatever still runs (a client that went away) and give back the caller's slot;
        once, however many ways the call ends."""
        if not self.closed:
            self.closed = True
            self.run.abort()
            self.release()


async def plan(generations: Generations, body: Body, who: str, request_id: str) -> Call:
    """Validate, tokenize, look up the cache and admit; raises what the error table maps."""
    backend = generations.ready()
    if body.model != backend.info.model_id:
        raise ModelNotFound(body.model)
    request_id = request_id or secrets.token_hex(12)
    template = backend.tokenizer.chat_template
    wanted = _messages(body, request_id, tool_calls.format_for(template))
    chat = isinstance(body, schemas.ChatCompletionRequest)
    tools = structured.shown_tools(body) if isinstance(body, schemas.ChatCompletionRequest) else []
    tool_call = isinstance(body, schemas.ChatCompletionRequest) and bool(
        structured.forced_tools(body)
    )
    parser = (
        structured.call_parser(body, template)
        if isinstance(body, schemas.ChatCompletionRequest)
        else None
    )
    release = generations.hold_slot(who)
    try:
        parsed = [await _parse(generations, backend, m, tools, tool_call) for m in wanted]
        requests = [choice for p in parsed for choice in expand(p, body.n)]
        cache = CacheLookup(None, "bypass")
        if len(requests) == 1:
            cache = await generations.lookup(wanted[0], parsed[0], backend, who)
        run = choices.Run(generations, backend, requests, cache)
        if cache.response is None:
            run.admit()
    except BaseException:
        release()
        raise
    env = formatting.Envelope(
        id=("chatcmpl-" if chat else "cmpl-") + request_id,
        created=int(time.time()),
        model=body.model,
        fingerprint="fp_" + backend.info.revision.removeprefix("sha256:")[:12],
        chat=chat,
        logprobs=wanted[0].options.logprobs,
        tool_call=tool_call,
        call_parser=parser,
    )
    return Call(run, env, sum(len(p.prompt_token_ids) for p in parsed), release)


async def _parse(
    generations: Generations,
    backend: Backend,
    message: pb.GenerateRequest,
    tools: list[dict[str, Any]],
    tool_call: bool,
) -> Request:
    """The shared parser; a forced call's bad grammar is named as the `tools` it came from."""
    try:
        return await generations.parse(backend, message, None, tools)
    except InvalidRequest as exc:
        if not tool_call:
            raise
        raise InvalidRequest(
            [
                FieldViolation("tools", v.description, v.reason)
                if v.field.startswith("structured_output")
                else v
                for v in exc.violations
            ]
        ) from None


def _messages(body: Body, request_id: str, calls: tool_calls.Format) -> list[pb.GenerateRequest]:
    """One GenerateRequest per prompt (chat has one); earlier calls are written as `calls`."""
    if isinstance(body, schemas.ChatCompletionRequest):
        return [convert.chat_request(body, request_id, calls)]
    texts = convert.prompts(body)
    ids = [request_id] if len(texts) == 1 else [f"{request_id}-p{i}" for i in range(len(texts))]
    return [convert.completion_request(body, t, i) for t, i in zip(texts, ids, strict=True)]


async def collect(call: Call) -> schemas.ChatCompletion | schemas.Completion:
    gathered = [formatting.Choice() for _ in call.run.requests]
    async for piece in choices.events(call.run):
        assert piece is not None
        if isinstance(piece, pb.Delta):
            gathered[piece.choice_index].add(piece)
        else:
            gathered[piece.choice_index].last = piece
    return formatting.whole(call.env, gathered, call.prompt_tokens)


async def stream(call: Call, idle_s: float, include_usage: bool) -> AsyncIterator[str]:
    """Server-sent events as OpenAI sends them."""
    env = call.env
    if env.chat:
        for index in range(len(call.run.requests)):
            yield _sse(formatting.chunk(env, index, None, None, role=True))
    send = _chunker(call)
    completion_tokens = 0
    async for message in choices.events(call.run, idle_s):
        if message is None:
            yield ": keep-alive\n\n"  # a comment: clients skip it, proxies see the stream alive
            continue
        if isinstance(message, pb.Final):
            completion_tokens += message.usage.output_tokens
        for chunk in send(message):
            yield _sse(chunk)
    if include_usage:
        yield _sse(formatting.usage_chunk(env, call.prompt_tokens, completion_tokens))
    yield "data: [DONE]\n\n"


def _chunker(call: Call) -> Callable[[pb.Delta | pb.Final], list[Chunk]]:
    """Each event's chunks: read for the model's own calls ("auto"), or the text as it is."""
    parser = call.env.call_parser
    if parser is None:
        return _PlainChoices(call.env, len(call.run.requests)).chunks
    streams = [ToolChoiceStream(call.env, i, parser) for i in range(len(call.run.requests))]

    def parsed(message: pb.Delta | pb.Final) -> list[Chunk]:
        stream = streams[message.choice_index]
        if isinstance(message, pb.Delta):
            return stream.add(message)
        return stream.end(formatting.finish_reason(message))

    return parsed


class _PlainChoices:
    """Text as it comes; `finish_reason` rides on a choice's last text, so each delta waits for
    the next event of its choice before it goes out."""

    def __init__(self, env: formatting.Envelope, count: int) -> None:
        self._env = env
        self._pending: dict[int, pb.Delta] = {}
        self._offsets = [0] * count

    def chunks(self, message: pb.Delta | pb.Final) -> list[Chunk]:
        env, index = self._env, message.choice_index
        held = self._pending.pop(index, None)
        if isinstance(message, pb.Final):
            finish = formatting.finish_reason(message)
            return [_last_chunk(env, index, held, finish, self._offsets[index])]
        # A token without text (end-of-sequence) joins the held delta; so does all of a forced
        # call's text, which goes out whole as the call.
        self._pending[index] = message
        if held is not None and (not message.text or env.tool_call):
            held.text += message.text
            held.logprobs.extend(message.logprobs)
            self._pending[index] = held
            return []
        if held is None:
            return []
        offset = self._offsets[index]
        self._offsets[index] += len(held.text)
        return [formatting.chunk(env, index, held, None, offset=offset)]


def _last_chunk(
    env: formatting.Envelope, index: int, held: pb.Delta | None, finish: str, offset: int
) -> schemas.ChatCompletionChunk | schemas.Completion:
    """A choice's last chunk, with its finish reason; a forced call's is the whole call (or, cut
    short, its text as content)."""
    if env.tool_call:
        _, calls, finish = formatting.as_tool_call(held.text if held else "", finish)
        if calls is not None:
            return formatting.tool_call_chunk(env, index, calls)
    return formatting.chunk(env, index, held, finish, offset=offset)


def _sse(obj: schemas.ChatCompletionChunk | schemas.Completion) -> str:
    return f"data: {obj.model_dump_json(exclude_none=False)}\n\n"
