"""From the protobuf events both faces share (Delta, Final) to OpenAI's objects.

Live generations and cached results both arrive here as protobuf messages, so there is one
conversion for each, whichever way the answer was produced.
"""

from __future__ import annotations

from dataclasses import dataclass

from seseragi.api.convert.responses import STOP_REASONS
from seseragi.api.http import schemas, structured, tool_calls
from seseragi.api.http.convert import FINISH_REASONS
from seseragi_contract.v1 import generation_pb2 as pb

FINISH_BY_STATUS = {theirs: FINISH_REASONS[ours] for ours, theirs in STOP_REASONS.items()}


@dataclass(frozen=True, slots=True)
class Envelope:
    """What every object of one answer repeats."""

    id: str
    created: int
    model: str
    fingerprint: str
    chat: bool
    logprobs: bool
    tool_call: bool = False  # a forced call: the text is the call's JSON
    call_parser: tool_calls.Parser | None = None  # "auto": calls the model writes are read


def as_tool_call(text: str, finish: str) -> tuple[str | None, list[schemas.ToolCall] | None, str]:
    """(content, tool_calls, finish_reason) of a forced call's choice: the call when it ended by
    itself, else its text as content (cut by max_tokens: `length`, as OpenAI says)."""
    calls = structured.forced_calls(text) if finish == "stop" else None
    if calls is None:
        return text, None, finish
    return None, calls, "tool_calls"


def openai_calls(calls: list[tool_calls.Call]) -> list[schemas.ToolCall]:
    """Calls read from the text, each with a fresh id, in OpenAI's shape."""
    return [
        schemas.ToolCall(
            id=structured.call_id(),
            function=schemas.FunctionCall(name=c.name, arguments=c.arguments),
        )
        for c in calls
    ]


def finish_reason(last: pb.Final) -> str:
    return FINISH_BY_STATUS[last.stop_reason]


def usage(prompt_tokens: int, completion_tokens: int) -> schemas.Usage:
    return schemas.Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


def chat_logprobs(items: list[pb.TokenLogprob]) -> schemas.ChoiceLogprobs:
    return schemas.ChoiceLogprobs(
        content=[
            schemas.TokenLogprob(
                token=item.token,
                logprob=item.logprob,
                bytes=list(item.token.encode()),
                top_logprobs=[
                    schemas.TopLogprob(
                        token=t.token, logprob=t.logprob, bytes=list(t.token.encode())
                    )
                    for t in item.top_logprobs
                ],
            )
            for item in items
        ]
    )


def _top(item: pb.TopLogprob) -> schemas.TopLogprob:
    return schemas.TopLogprob(
        token=item.token, logprob=item.logprob, bytes=list(item.token.encode())
    )


def legacy_logprobs(items: list[pb.TokenLogprob], offset: int) -> schemas.LegacyLogprobs:
    """The completions API's parallel lists; `offset` is where this text starts in the choice."""
    result = schemas.LegacyLogprobs()
    for item in items:
        result.tokens.append(item.token)
        result.token_logprobs.append(item.logprob)
        result.top_logprobs.append({t.token: t.logprob for t in item.top_logprobs})
        result.text_offset.append(offset)
        offset += len(item.token)
    return result


class Choice:
    """One choice's text, logprobs and end, gathered for a non-streaming answer."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.logprobs: list[pb.TokenLogprob] = []
        self.last: pb.Final | None = None

    def add(self, piece: pb.Delta) -> None:
        self.text.append(piece.text)
        self.logprobs.extend(piece.logprobs)


def whole(
    env: Envelope, choices: list[Choice], prompt_tokens: int
) -> schemas.ChatCompletion | schemas.Completion:
    completion_tokens = sum(c.last.usage.output_tokens for c in choices if c.last is not None)
    counted = usage(prompt_tokens, completion_tokens)
    if env.chat:
        return schemas.ChatCompletion(
            id=env.id,
            created=env.created,
            model=env.model,
            system_fingerprint=env.fingerprint,
            usage=counted,
            choices=[_chat_choice(env, i, c) for i, c in enumerate(choices)],
        )
    return schemas.Completion(
        id=env.id,
        created=env.created,
        model=env.model,
        system_fingerprint=env.fingerprint,
        usage=counted,
        choices=[
            schemas.CompletionChoice(
                index=i,
                text="".join(c.text),
                logprobs=legacy_logprobs(c.logprobs, 0) if env.logprobs else None,
                finish_reason=finish_reason(c.last) if c.last is not None else "stop",
            )
            for i, c in enumerate(choices)
        ],
    )


def _chat_choice(env: Envelope, index: int, choice: Choice) -> schemas.ChatChoice:
    text = "".join(choice.text)
    finish = finish_reason(choice.last) if choice.last is not None else "stop"
    content: str | None = text
    calls = None
    if env.tool_call:
        content, calls, finish = as_tool_call(text, finish)
    elif env.call_parser is not None:
        reading = env.call_parser.read(text)
        if reading.calls:
            content, calls, finish = reading.content, openai_calls(reading.calls), "tool_calls"
    return schemas.ChatChoice(
        index=index,
        message=schemas.AssistantMessage(content=content, tool_calls=calls),
        logprobs=chat_logprobs(choice.logprobs) if env.logprobs else None,
        finish_reason=finish,
    )


def tool_call_chunk(
    env: Envelope,
    index: int,
    calls: list[schemas.ToolCall],
    finish: str | None = "tool_calls",
    *,
    first: int = 0,
    logprobs: list[pb.TokenLogprob] | None = None,
) -> schemas.ChatCompletionChunk:
    """Calls, each whole in one delta numbered from `first` (OpenAI streams a call's arguments
    in pieces; clients join them, so one piece is the same call)."""
    streamed = [
        schemas.ChunkToolCall(index=first + i, **c.model_dump()) for i, c in enumerate(calls)
    ]
    return schemas.ChatCompletionChunk(
        id=env.id,
        created=env.created,
        model=env.model,
        system_fingerprint=env.fingerprint,
        choices=[
            schemas.ChatChunkChoice(
                index=index,
                delta=schemas.ChunkDelta(tool_calls=streamed),
                logprobs=chat_logprobs(logprobs) if env.logprobs and logprobs else None,
                finish_reason=finish,
            )
        ],
    )


def chunk(
    env: Envelope,
    index: int,
    piece: pb.Delta | None,
    finish: str | None,
    *,
    role: bool = False,
    offset: int = 0,
) -> schemas.ChatCompletionChunk | schemas.Completion:
    """One streamed object: a choice's text (maybe none) and, on its last chunk, the reason."""
    text = piece.text if piece is not None else ""
    items = list(piece.logprobs) if piece is not None else []
    if env.chat:
        delta = schemas.ChunkDelta(role="assistant", content=text) if role else None
        return schemas.ChatCompletionChunk(
            id=env.id,
            created=env.created,
            model=env.model,
            system_fingerprint=env.fingerprint,
            choices=[
                schemas.ChatChunkChoice(
                    index=index,
                    delta=delta or schemas.ChunkDelta(content=text if piece is not None else None),
                    logprobs=chat_logprobs(items) if env.logprobs and items else None,
                    finish_reason=finish,
                )
            ],
        )
    return schemas.Completion(
        id=env.id,
        created=env.created,
        model=env.model,
        system_fingerprint=env.fingerprint,
        choices=[
            schemas.CompletionChoice(
                index=index,
                text=text,
                logprobs=legacy_logprobs(items, offset) if env.logprobs and items else None,
                finish_reason=finish,
            )
        ],
    )


def usage_chunk(
    env: Envelope, prompt_tokens: int, completion_tokens: int
) -> schemas.ChatCompletionChunk | schemas.Completion:
    counted = usage(prompt_tokens, completion_tokens)
    if env.chat:
        return schemas.ChatCompletionChunk(
            id=env.id,
            created=env.created,
            model=env.model,
            system_fingerprint=env.fingerprint,
            choices=[],
            usage=counted,
        )
    return schemas.Completion(
        id=env.id,
        created=env.created,
        model=env.model,
        system_fingerprint=env.fingerprint,
        choices=[],
        usage=counted,
    )
