"""OpenAI request bodies to the `GenerateRequest` the gRPC face parses, and names back.

Going through the protobuf request means one parser validates both APIs; an error it raises
names a protobuf field, which `param_name` turns back into the OpenAI parameter the caller sent.
"""

from __future__ import annotations

import re

from seseragi.api.errors import FieldViolation, InvalidRequest
from seseragi.api.http import structured, tool_turns
from seseragi.api.http.schemas import ChatCompletionRequest, ChatMessage, CompletionRequest
from seseragi.api.http.tool_calls import Format
from seseragi.engine.types import StopReason
from seseragi_contract.v1 import generation_pb2 as pb

PARAMS = {
    "sampling.temperature": "temperature",
    "sampling.top_p": "top_p",
    "sampling.top_k": "top_k",
    "sampling.repetition_penalty": "repetition_penalty",
    "sampling.presence_penalty": "presence_penalty",
    "sampling.frequency_penalty": "frequency_penalty",
    "sampling.min_p": "min_p",
    "sampling.logit_bias": "logit_bias",
    "stopping.max_new_tokens": "max_tokens",
    "stopping.min_new_tokens": "min_tokens",
    "stopping.stop_sequences": "stop",
    "stopping.stop_token_ids": "stop_token_ids",
    "options.top_logprobs": "top_logprobs",
    "structured_output.json_schema": "response_format",
}

FINISH_REASONS = {
    StopReason.MAX_TOKENS: "length",
    StopReason.CONTEXT_LENGTH: "length",
    StopReason.END_OF_SEQUENCE: "stop",
    StopReason.STOP_SEQUENCE: "stop",
    StopReason.STOP_TOKEN: "stop",
    StopReason.TIME_LIMIT: "length",
}


def param_name(field: str) -> str:
    """`stopping.stop_sequences[2]` → `stop[2]`; fields without a twin keep their name."""
    match = re.fullmatch(r"([a-z_.]+)(\[.*)?", field)
    if match is None:
        return field
    base, rest = match.group(1), match.group(2) or ""
    return PARAMS.get(base, base) + rest


def chat_request(
    body: ChatCompletionRequest, request_id: str, calls: Format = Format.JSON
) -> pb.GenerateRequest:
    """The chat body as a GenerateRequest; a forced tool call becomes its grammar, and earlier
    calls and their results are written the way the model's template writes them (`calls`)."""
    message = _common(body, request_id)
    forced = structured.forced_tools(body)
    if forced and body.response_format and body.response_format.get("type") != "text":
        raise _invalid("response_format", "cannot be combined with a forced tool call", "CONFLICT")
    if forced:
        message.structured_output.json_schema = structured.call_grammar(forced)
    else:
        structured.apply_response_format(body, message)
    names = tool_turns.call_names(body.messages)
    message.messages.extend(_chat_message(m, i, names, calls) for i, m in enumerate(body.messages))
    max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else None
    if max_tokens is None:
        max_tokens = body.max_tokens
    _max_tokens(message, max_tokens, "max_completion_tokens")
    if body.logprobs or body.top_logprobs:
        message.options.logprobs = True
        message.options.top_logprobs = _non_negative(body.top_logprobs or 0, "top_logprobs")
    return message


def completion_request(body: CompletionRequest, prompt: str, request_id: str) -> pb.GenerateRequest:
    if body.echo:
        raise _invalid("echo", "echo is not supported", "UNSUPPORTED")
    message = _common(body, request_id)
    message.prompt = prompt
    _max_tokens(message, body.max_tokens, "max_tokens")
    if body.logprobs is not None:
        message.options.logprobs = True
        message.options.top_logprobs = _non_negative(body.logprobs, "logprobs")
    return message


def prompts(body: CompletionRequest) -> list[str]:
    """The completions API takes one prompt or a list; each gets n choices."""
    if isinstance(body.prompt, str):
        return [body.prompt]
    if not body.prompt:
        raise _invalid("prompt", "must not be an empty list", "EMPTY_PROMPT")
    return list(body.prompt)


def _common(body: ChatCompletionRequest | CompletionRequest, request_id: str) -> pb.GenerateRequest:
    message = pb.GenerateRequest(request_id=request_id)
    _sampling(body, message.sampling)
    stopping = message.stopping
    stopping.min_new_tokens = _non_negative(body.min_tokens, "min_tokens")
    stopping.stop_sequences.extend([body.stop] if isinstance(body.stop, str) else body.stop or [])
    for i, token_id in enumerate(body.stop_token_ids or []):
        stopping.stop_token_ids.append(_non_negative(token_id, f"stop_token_ids[{i}]"))
    stopping.ignore_eos = body.ignore_eos
    if body.n < 1:
        raise _invalid("n", "must be at least 1", "OUT_OF_RANGE")
    message.n = min(body.n, 1 << 31)  # the shared parser names the real limit
    return message


def _sampling(body: ChatCompletionRequest | CompletionRequest, sampling: pb.SamplingParams) -> None:
    """Copy what the caller set; what it left unset stays unset, so server defaults apply."""
    for name in (
        "temperature",
        "top_p",
        "repetition_penalty",
        "presence_penalty",
        "frequency_penalty",
        "min_p",
    ):
        value = getattr(body, name)
        if value is not None:
            setattr(sampling, name, value)
    if body.top_k is not None:
        sampling.top_k = 0 if body.top_k == -1 else body.top_k  # vLLM: -1 means off
    if body.seed is not None:
        sampling.seed = body.seed % (1 << 64)  # OpenAI allows negative seeds
    for token, bias in (body.logit_bias or {}).items():
        if not token.isdigit() or int(token) >= 1 << 32:
            raise _invalid(f"logit_bias[{token}]", "keys must be token ids", "BAD_TOKEN_ID")
        sampling.logit_bias[int(token)] = bias


def _chat_message(
    message: ChatMessage, index: int, names: dict[str, str], calls: Format
) -> pb.ChatMessage:
    """One turn; tool calls and tool results become text (see tool_turns)."""
    content = _text(message, index)
    if message.role == "tool":
        result = tool_turns.result_text(message, content, index, names, calls)
        return pb.ChatMessage(role="user", content=result)
    if message.tool_calls:
        if message.role != "assistant":
            raise _invalid(
                f"messages[{index}].tool_calls", "only assistant turns make calls", "UNSUPPORTED"
            )
        content = tool_turns.calls_text(message.tool_calls, content, index, calls)
    return pb.ChatMessage(role=message.role, content=content)


def _text(message: ChatMessage, index: int) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    for j, part in enumerate(content):
        if part.type != "text":
            field = f"messages[{index}].content[{j}].type"
            raise _invalid(field, f"{part.type!r} parts are not supported", "UNSUPPORTED")
    return "".join(part.text for part in content)


def _max_tokens(message: pb.GenerateRequest, value: int | None, name: str) -> None:
    if value is not None:
        message.stopping.max_new_tokens = _non_negative(value, name)
        if value == 0:
            raise _invalid(name, "must be at least 1", "OUT_OF_RANGE")


def _non_negative(value: int, name: str) -> int:
    if not 0 <= value < 1 << 32:
        raise _invalid(name, "must be a non-negative integer", "OUT_OF_RANGE")
    return value


def _invalid(field: str, description: str, reason: str) -> InvalidRequest:
    return InvalidRequest([FieldViolation(field, description, reason)])
