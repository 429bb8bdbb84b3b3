"""OpenAI's `response_format`, `tools` and `tool_choice` as a `structured_output` grammar, and a
forced call's JSON back as OpenAI's `tool_calls`.

A required or named call is generated as `{"name": ..., "arguments": {...}}` under a grammar, so
even a small model returns a call that parses and matches its function's parameters. With
`tool_choice` "auto" (OpenAI's default when tools are given) the model chooses, and the calls it
writes are read from its text by the parser its chat template implies (tool_calls.py), as vLLM's
`--tool-call-parser` does without having to be told which. A JSON `response_format` wins over
"auto", as in vLLM (whose format grammar leaves a call no room, vllm-project/vllm#39929): the
answer is content, never read for calls, so a call-shaped object or a `<tool_call>` tag inside a
JSON string stays in the JSON the client asked for.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from seseragi.api.errors import FieldViolation, InvalidRequest
from seseragi.api.http import schemas, tool_calls
from seseragi_contract.v1 import generation_pb2 as pb

ANY_OBJECT = {"type": "object"}


def wants_json(body: schemas.ChatCompletionRequest) -> bool:
    """Whether `response_format` holds the answer to JSON (json_object or json_schema)."""
    wanted = body.response_format or {}
    return wanted.get("type") in ("json_object", "json_schema")


def apply_response_format(body: schemas.ChatCompletionRequest, message: pb.GenerateRequest) -> None:
    """json_object / json_schema (strict or not: both are enforced, as vLLM does)."""
    wanted = body.response_format
    if wanted is None or wanted.get("type") == "text":
        return
    kind = wanted.get("type")
    if kind == "json_object":
        message.structured_output.json_schema = json.dumps(ANY_OBJECT)
        return
    if kind != "json_schema":
        raise _invalid("response_format.type", "use text, json_object or json_schema")
    schema = (wanted.get("json_schema") or {}).get("schema")
    if not isinstance(schema, dict):
        raise _invalid("response_format.json_schema.schema", "must be a JSON schema object")
    message.structured_output.json_schema = json.dumps(schema)


def forced_tools(body: schemas.ChatCompletionRequest) -> list[dict[str, Any]]:
    """The functions a call must be made to (empty: no call is forced); checks tools/tool_choice."""
    functions = [_function(tool, i) for i, tool in enumerate(body.tools or [])]
    choice = body.tool_choice
    if choice is None or choice in ("auto", "none"):
        return []
    if not functions:
        raise _invalid("tool_choice", "needs tools")
    if choice == "required":
        return functions
    name = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
    if name is None:
        raise _invalid("tool_choice", "use none, auto, required or a named function")
    named = [f for f in functions if f["name"] == name]
    if not named:
        raise _invalid("tool_choice.function.name", f"no tool is named {name!r}")
    return named


def shown_tools(body: schemas.ChatCompletionRequest) -> list[dict[str, Any]]:
    """The tools the model is told about: none with tool_choice "none"."""
    if body.tool_choice == "none":
        return []
    return list(body.tools or [])


def call_parser(
    body: schemas.ChatCompletionRequest, chat_template: str
) -> tool_calls.Parser | None:
    """How the model's own calls are read ("auto"); None without tools, with a forced call, or
    when a JSON `response_format` makes the answer content."""
    shown = shown_tools(body)
    if not shown or forced_tools(body) or wants_json(body):
        return None
    names = frozenset(_function(tool, i)["name"] for i, tool in enumerate(shown))
    return tool_calls.Parser(tool_calls.format_for(chat_template), names)


def call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def call_grammar(functions: list[dict[str, Any]]) -> str:
    """A JSON schema for one call to any of `functions`."""
    calls = [
        {
            "type": "object",
            "properties": {
                "name": {"const": f["name"]},
                "arguments": f.get("parameters") or ANY_OBJECT,
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for f in functions
    ]
    return json.dumps(calls[0] if len(calls) == 1 else {"anyOf": calls})


def forced_calls(text: str) -> list[schemas.ToolCall] | None:
    """The call a forced generation made, or None when its text is not a whole call (cut short)."""
    try:
        call = json.loads(text)
        name, arguments = call["name"], call["arguments"]
    except (ValueError, KeyError, TypeError):
        return None
    function = schemas.FunctionCall(name=name, arguments=json.dumps(arguments))
    return [schemas.ToolCall(id=call_id(), function=function)]


def _function(tool: dict[str, Any], index: int) -> dict[str, Any]:
    function = tool.get("function")
    if tool.get("type") != "function" or not isinstance(function, dict):
        raise _invalid(f"tools[{index}]", 'each tool must be {"type": "function", "function": ...}')
    if not isinstance(function.get("name"), str) or not function["name"]:
        raise _invalid(f"tools[{index}].function.name", "must be a non-empty string")
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise _invalid(f"tools[{index}].function.parameters", "must be a JSON schema object")
    return function


def _invalid(field: str, description: str) -> InvalidRequest:
    return InvalidRequest([FieldViolation(field, description, "INVALID_TOOLS_OR_FORMAT")])
