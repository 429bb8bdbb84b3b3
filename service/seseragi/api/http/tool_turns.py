"""OpenAI's tool-call turns as the plain turns the gRPC contract carries.

After a tool call an OpenAI client sends back the assistant turn with its `tool_calls` and one
`tool` turn per result. `ChatMessage` knows only system, user and assistant, so (unlike vLLM,
which hands `tool` turns to the template) each becomes text any template renders: the call as
the same `{"name", "arguments"}` JSON a forced call is generated as, the result as a user turn
that names the call it answers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from seseragi.api.errors import FieldViolation, InvalidRequest
from seseragi.api.http.schemas import ChatMessage, ToolCall


def call_names(messages: Sequence[ChatMessage]) -> dict[str, str]:
    """Every call id the conversation's assistant turns made -> the function it called."""
    return {
        call.id: call.function.name for message in messages for call in message.tool_calls or []
    }


def calls_text(calls: Sequence[ToolCall], content: str, index: int) -> str:
    """The assistant's own text (if any), then one JSON line per call it made."""
    lines = [content] if content else []
    for j, call in enumerate(calls):
        try:
            arguments = json.loads(call.function.arguments)
        except ValueError:
            field = f"messages[{index}].tool_calls[{j}].function.arguments"
            raise _invalid(field, "must be JSON text") from None
        lines.append(json.dumps({"name": call.function.name, "arguments": arguments}))
    return "\n".join(lines)


def result_text(message: ChatMessage, content: str, index: int, names: dict[str, str]) -> str:
    """A `tool` turn's result, headed by the function and call id it answers."""
    if not message.tool_call_id:
        raise _invalid(f"messages[{index}].tool_call_id", "a tool message needs the call's id")
    name = names.get(message.tool_call_id)
    if name is None:
        raise _invalid(
            f"messages[{index}].tool_call_id",
            f"no earlier assistant message made the call {message.tool_call_id!r}",
        )
    return f"Result of {name} (call {message.tool_call_id}):\n{content}"


def _invalid(field: str, description: str) -> InvalidRequest:
    return InvalidRequest([FieldViolation(field, description, "INVALID_TOOL_MESSAGE")])
