"""OpenAI's tool-call turns as the plain turns the gRPC contract carries.

After a tool call an OpenAI client sends back the assistant turn with its `tool_calls` and one
`tool` turn per result. `ChatMessage` knows only system, user and assistant, so (unlike vLLM,
which hands `tool` turns to the template) each becomes text any template renders, written as the
model was taught to: for a template with `<tool_call>` tags (Hermes, Qwen) as those templates
write them, `<tool_call>` blocks and a user turn holding a `<tool_response>` block; for any other,
the same `{"name", "arguments"}` JSON a call is generated as, and a user turn that names the call
it answers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from seseragi.api.errors import FieldViolation, InvalidRequest
from seseragi.api.http.schemas import ChatMessage, ToolCall
from seseragi.api.http.tool_calls import CLOSE, OPEN, Format


def call_names(messages: Sequence[ChatMessage]) -> dict[str, str]:
    """Every call id the conversation's assistant turns made -> the function it called."""
    return {
        call.id: call.function.name for message in messages for call in message.tool_calls or []
    }


def calls_text(
    calls: Sequence[ToolCall], content: str, index: int, fmt: Format = Format.JSON
) -> str:
    """The assistant's own text (if any), then each call it made: a JSON line (or block)."""
    lines = [content] if content else []
    for j, call in enumerate(calls):
        try:
            arguments = json.loads(call.function.arguments)
        except ValueError:
            field = f"messages[{index}].tool_calls[{j}].function.arguments"
            raise _invalid(field, "must be JSON text") from None
        line = json.dumps({"name": call.function.name, "arguments": arguments})
        lines.append(f"{OPEN}\n{line}\n{CLOSE}" if fmt is Format.TAGGED else line)
    return "\n".join(lines)


def result_text(
    message: ChatMessage,
    content: str,
    index: int,
    names: dict[str, str],
    fmt: Format = Format.JSON,
) -> str:
    """A `tool` turn's result, headed by the function and call id it answers (a tagged template
    puts it in a `<tool_response>` block instead)."""
    if not message.tool_call_id:
        raise _invalid(f"messages[{index}].tool_call_id", "a tool message needs the call's id")
    name = names.get(message.tool_call_id)
    if name is None:
        raise _invalid(
            f"messages[{index}].tool_call_id",
            f"no earlier assistant message made the call {message.tool_call_id!r}",
        )
    if fmt is Format.TAGGED:
        return f"<tool_response>\n{content}\n</tool_response>"
    return f"Result of {name} (call {message.tool_call_id}):\n{content}"


def _invalid(field: str, description: str) -> InvalidRequest:
    return InvalidRequest([FieldViolation(field, description, "INVALID_TOOL_MESSAGE")])
