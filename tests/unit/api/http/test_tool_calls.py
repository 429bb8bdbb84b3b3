"""Reading a model's own tool calls from its text, whole and streamed in any pieces."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seseragi.api.http.tool_calls import (
    Call,
    CallStream,
    Event,
    Format,
    Reading,
    format_for,
    read,
)

pytestmark = pytest.mark.unit
NAMES = {"get_weather", "get_time"}
TOKYO = Call("get_weather", '{"city": "Tokyo"}')
TIME = Call("get_time", "{}")
WEATHER = '{"name": "get_weather", "arguments": {"city": "Tokyo"}}'


def _tagged(inside: str) -> str:
    return f"<tool_call>\n{inside}\n</tool_call>"


def test_the_template_chooses_the_format() -> None:
    qwen = "{%- for tool in tools %}...<tool_call>\\n{{ tool_call | tojson }}\\n</tool_call>"
    assert format_for(qwen) is Format.TAGGED
    assert format_for("{{ '<|im_start|>' + message['role'] }}") is Format.JSON


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_tagged(WEATHER), Reading(None, [TOKYO])),
        (f"Let me look.\n{_tagged(WEATHER)}\n", Reading("Let me look.", [TOKYO])),
        (
            _tagged(WEATHER) + _tagged('{"name": "get_time", "parameters": {}}'),
            Reading(None, [TOKYO, TIME]),
        ),
        (  # arguments given as a string holding JSON
            _tagged('{"name": "get_weather", "arguments": "{\\"city\\": \\"Tokyo\\"}"}'),
            Reading(None, [TOKYO]),
        ),
        (f"<tool_call>{WEATHER}", Reading(None, [TOKYO])),  # the end came before the tag
        (f"{_tagged(WEATHER)}\n\nIt is sunny.", Reading("It is sunny.", [TOKYO])),
        (f"A{_tagged(WEATHER)}\nB", Reading("A\nB", [TOKYO])),
    ],
)
def test_tagged_calls_are_read(text: str, expected: Reading) -> None:
    assert read(text, Format.TAGGED, NAMES) == expected


@pytest.mark.parametrize(
    "inside",
    [
        '{"name": "get_weather", "arguments": {"city": "Tokyo"}',  # malformed JSON
        '{"name": "delete_everything", "arguments": {}}',  # not one of the tools
        '{"name": "get_weather"}',  # no arguments
        '{"name": "get_weather", "arguments": "city=Tokyo"}',  # a string that is no JSON object
        '{"name": "get_weather", "arguments": [1]}',
        '{"name": "get_weather", "arguments": {"t": NaN}}',  # JSON has no NaN
        '{"name": "get_weather", "description": "Weather.", "parameters": {}}',  # a definition
        f"[{WEATHER}, {WEATHER}]",  # one call per block
    ],
)
def test_a_block_that_is_no_call_stays_content(inside: str) -> None:
    text = f"Sure. {_tagged(inside)} {_tagged(WEATHER)}"
    assert read(text, Format.TAGGED, NAMES) == Reading(f"Sure. {_tagged(inside)}", [TOKYO])
    assert read(_tagged(inside), Format.TAGGED, NAMES) == Reading(_tagged(inside), [])


@pytest.mark.parametrize(
    ("text", "calls"),
    [
        (WEATHER, [TOKYO]),
        (f"\n {WEATHER}\n", [TOKYO]),
        (
            f'[{WEATHER}, {{"name": "get_time", "parameters": {{}}}}]',
            [TOKYO, TIME],
        ),
        (
            '{"name": "get_weather", "arguments": {"city": "東京"}}',
            [Call("get_weather", '{"city": "東京"}')],
        ),
    ],
)
def test_a_whole_json_answer_is_calls(text: str, calls: list[Call]) -> None:
    assert read(text, Format.JSON, NAMES) == Reading(None, calls)


@pytest.mark.parametrize(
    "text",
    [
        f"Here you go: {WEATHER}",  # text around it: the answer is not only the call
        f"{WEATHER} done",
        f'[{WEATHER}, {{"name": "nope", "arguments": {{}}}}]',  # one unknown name
        "[]",
        '{"name": "Bob", "age": 3}',  # JSON that is no call
        '{"name": "get_weather", "arguments": {"city": "Tok',  # cut short
        _tagged(WEATHER),  # tags mean nothing to a template that does not teach them
        "",
        "  ",
    ],
)
def test_a_json_answer_that_is_not_only_calls_is_content(text: str) -> None:
    assert read(text, Format.JSON, NAMES) == Reading(text, [])


def _streamed(fmt: Format, pieces: list[str]) -> list[Event]:
    stream = CallStream(fmt, NAMES)
    events = [e for piece in pieces for e in stream.feed(piece)]
    return events + stream.end()


def test_text_before_a_call_streams_and_the_tag_is_held() -> None:
    stream = CallStream(Format.TAGGED, NAMES)
    assert stream.feed("It is") == ["It is"]
    assert stream.feed(" <tool") == []  # could be the tag
    assert stream.feed("_call>{") == []
    assert stream.feed(WEATHER[1:] + "</tool_call>") == [TOKYO]
    assert stream.feed("<tool-less") == ["<tool-less"]
    assert stream.end() == []


def test_json_text_streams_at_once_and_a_json_call_waits_for_the_end() -> None:
    plain = CallStream(Format.JSON, NAMES)
    assert plain.feed(" ") == []
    assert plain.feed("Hi {") == [" Hi {"]
    call = CallStream(Format.JSON, NAMES)
    assert call.feed(WEATHER) == []
    assert call.end() == [TOKYO]


FRAGMENTS = st.sampled_from(
    [
        "<tool_call>",
        "</tool_call>",
        WEATHER,
        '{"name": "nope", "arguments": {}}',
        "[",
        "]",
        ", ",
        "{",
        "<tool",
        "_call>",
        "Hello",
        " ",
        "\n",
        "é",
    ]
)


def _cuts(text: str, at: list[int]) -> list[str]:
    points = sorted({0, len(text), *(a % (len(text) + 1) for a in at)})
    return [text[i:j] for i, j in zip(points, points[1:], strict=False)]


def _joined(events: list[Event]) -> tuple[str, list[Call]]:
    return "".join(e for e in events if isinstance(e, str)), [
        e for e in events if isinstance(e, Call)
    ]


@given(
    fragments=st.lists(FRAGMENTS, max_size=12),
    at=st.lists(st.integers(min_value=0), max_size=8),
    fmt=st.sampled_from(Format),
)
def test_any_streaming_pieces_read_as_the_whole_text(
    fragments: list[str], at: list[int], fmt: Format
) -> None:
    text = "".join(fragments)
    whole = read(text, fmt, NAMES)
    content, calls = _joined(_streamed(fmt, _cuts(text, at)))
    assert calls == whole.calls
    assert content == (whole.content or "")
    if not calls:  # an answer without calls comes out exactly as the model wrote it
        assert content == text
    for call in calls:
        assert call.name in NAMES and isinstance(json.loads(call.arguments), dict)
