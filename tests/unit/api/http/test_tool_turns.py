"""Tool calls and tool results become turns the contract carries, as text the model can read."""

from __future__ import annotations

import pytest

from seseragi.api.errors import InvalidRequest
from seseragi.api.http import convert
from seseragi.api.http.schemas import ChatCompletionRequest
from seseragi.api.http.tool_calls import Format, read

pytestmark = pytest.mark.unit
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Tokyo"}'},
}


def _body(*messages: dict[str, object]) -> ChatCompletionRequest:
    turns = [{"role": "user", "content": "Weather in Tokyo?"}, *messages]
    return ChatCompletionRequest.model_validate({"model": "m", "messages": turns})


def test_a_call_and_its_result_become_assistant_and_user_text() -> None:
    result = {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": [{"type": "text", "text": "18C"}],
    }
    request = convert.chat_request(
        _body({"role": "assistant", "content": None, "tool_calls": [CALL]}, result), "r"
    )
    turns = [(m.role, m.content) for m in request.messages]
    assert turns[1:] == [
        ("assistant", '{"name": "get_weather", "arguments": {"city": "Tokyo"}}'),
        ("user", "Result of get_weather (call call_1):\n18C"),
    ]


def test_a_tagged_template_gets_calls_and_results_as_it_writes_them() -> None:
    """Qwen/Hermes templates write a call as a `<tool_call>` block and a result as a user turn
    holding a `<tool_response>` block; what the model sees is what it is read back as."""
    result = {"role": "tool", "tool_call_id": "call_1", "content": "18C"}
    request = convert.chat_request(
        _body({"role": "assistant", "content": "Looking.", "tool_calls": [CALL]}, result),
        "r",
        Format.TAGGED,
    )
    turns = [(m.role, m.content) for m in request.messages]
    block = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Tokyo"}}\n</tool_call>'
    assert turns[1:] == [
        ("assistant", f"Looking.\n{block}"),
        ("user", "<tool_response>\n18C\n</tool_response>"),
    ]
    reading = read(turns[1][1], Format.TAGGED, {"get_weather"})
    assert reading.content == "Looking." and reading.calls[0].name == "get_weather"


def test_the_assistant_text_before_its_calls_is_kept() -> None:
    request = convert.chat_request(
        _body({"role": "assistant", "content": "Let me look.", "tool_calls": [CALL, CALL]}), "r"
    )
    lines = request.messages[1].content.split("\n")
    assert lines[0] == "Let me look." and len(lines) == 3


@pytest.mark.parametrize(
    ("turns", "field"),
    [
        ([{"role": "tool", "content": "18C"}], "messages[1].tool_call_id"),
        (
            [{"role": "tool", "tool_call_id": "call_9", "content": "18C"}],
            "messages[1].tool_call_id",
        ),
        (
            [
                {
                    "role": "assistant",
                    "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "{"}}],
                }
            ],
            "messages[1].tool_calls[0].function.arguments",
        ),
        ([{"role": "user", "content": "x", "tool_calls": [CALL]}], "messages[1].tool_calls"),
    ],
)
def test_malformed_tool_turns_are_refused_by_name(
    turns: list[dict[str, object]], field: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        convert.chat_request(_body(*turns), "r")
    assert [v.field for v in refused.value.violations] == [field]
