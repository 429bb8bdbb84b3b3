"""Which chat bodies have their answers read for the model's own calls ("auto")."""

from __future__ import annotations

from typing import Any

import pytest

from seseragi.api.http import structured
from seseragi.api.http.schemas import ChatCompletionRequest
from seseragi.api.http.tool_calls import Format

pytestmark = pytest.mark.unit
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
TAGGED = "{{ '<tool_call>' }}"


def _body(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "Hi"}], **fields}
    )


@pytest.mark.parametrize("response_format", [None, {"type": "text"}])
@pytest.mark.parametrize("tool_choice", [None, "auto"])
def test_auto_reads_calls_in_the_templates_format(
    response_format: dict[str, Any] | None, tool_choice: str | None
) -> None:
    body = _body(tools=[TOOL], tool_choice=tool_choice, response_format=response_format)
    parser = structured.call_parser(body, TAGGED)
    assert parser is not None
    assert parser.fmt is Format.TAGGED and parser.names == {"get_weather"}


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}},
    ],
)
def test_a_json_response_format_makes_the_answer_content_not_calls(
    response_format: dict[str, Any],
) -> None:
    body = _body(tools=[TOOL], tool_choice="auto", response_format=response_format)
    assert structured.wants_json(body)
    assert structured.call_parser(body, TAGGED) is None
    assert structured.call_parser(body, "") is None


@pytest.mark.parametrize("fields", [{}, {"tools": [TOOL], "tool_choice": "none"}])
def test_nothing_is_read_without_shown_tools(fields: dict[str, Any]) -> None:
    assert structured.call_parser(_body(**fields), TAGGED) is None
