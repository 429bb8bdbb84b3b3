"""A streamed "auto" choice as OpenAI's chunks: text as content, calls as tool_call deltas."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seseragi.api.http.formatting import Envelope
from seseragi.api.http.schemas import ChatCompletionChunk, ChunkDelta
from seseragi.api.http.tool_calls import Format, Parser
from seseragi.api.http.tool_stream import ToolChoiceStream
from seseragi_contract.v1 import generation_pb2 as pb

pytestmark = pytest.mark.unit
ENV = Envelope(id="chatcmpl-1", created=1, model="m", fingerprint="fp", chat=True, logprobs=True)
TAGGED = Parser(Format.TAGGED, frozenset({"get_weather", "get_time"}))
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Tokyo"}}\n</tool_call>'


def _run(parser: Parser, pieces: list[str], finish: str = "stop") -> list[ChatCompletionChunk]:
    stream = ToolChoiceStream(ENV, 2, parser)
    chunks = []
    for piece in pieces:
        delta = pb.Delta(text=piece, logprobs=[pb.TokenLogprob(token=piece, logprob=-0.5)])
        chunks += stream.add(delta)
    chunks += stream.end(finish)
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    return chunks  # type: ignore[return-value]


def _deltas(chunks: list[ChatCompletionChunk]) -> list[ChunkDelta]:
    assert all(len(c.choices) == 1 and c.choices[0].index == 2 for c in chunks)
    return [c.choices[0].delta for c in chunks]


def test_text_then_calls_stream_as_content_then_numbered_call_deltas() -> None:
    time_call = '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>'
    pieces = ["Let me ", "check.\n<tool", "_call>\n", CALL[12:], "\n", time_call]
    chunks = _run(TAGGED, pieces)
    deltas = _deltas(chunks)
    assert [d.content for d in deltas[:2]] == ["Let me", " check."]
    calls = [d.tool_calls[0] for d in deltas[2:] if d.tool_calls]
    assert [(c.index, c.type, c.function.name) for c in calls] == [
        (0, "function", "get_weather"),
        (1, "function", "get_time"),
    ]
    assert json.loads(calls[0].function.arguments) == {"city": "Tokyo"}
    assert calls[0].id.startswith("call_") and calls[0].id != calls[1].id
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, None, "tool_calls"]
    tokens = [
        t.token for c in chunks if c.choices[0].logprobs for t in c.choices[0].logprobs.content
    ]
    assert tokens == pieces  # every token's logprob goes out, on the chunk it let out


def test_plain_text_streams_unchanged_and_ends_with_the_engine_finish() -> None:
    pieces = ["The weather ", "is <", "b>fine</b>", " "]
    chunks = _run(TAGGED, pieces, finish="length")
    assert "".join(d.content or "" for d in _deltas(chunks)) == "".join(pieces)
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(not d.tool_calls for d in _deltas(chunks))


def test_a_json_answer_is_held_to_the_end_and_becomes_one_call() -> None:
    parser = Parser(Format.JSON, frozenset({"get_weather"}))
    text = '{"name": "get_weather", "arguments": {"city": "Tokyo"}}'
    stream = ToolChoiceStream(ENV, 0, parser)
    assert stream.add(pb.Delta(text=text[:10])) == []
    assert stream.add(pb.Delta(text=text[10:])) == []
    [last] = stream.end("stop")
    assert isinstance(last, ChatCompletionChunk)
    delta = last.choices[0].delta
    assert delta.content is None and delta.tool_calls is not None
    assert delta.tool_calls[0].function.name == "get_weather"
    assert last.choices[0].finish_reason == "tool_calls"


def test_an_unfinished_call_comes_out_as_text_when_cut_short() -> None:
    chunks = _run(TAGGED, ["<tool_call>", '{"name": "get_weather", "argu'], finish="length")
    deltas = _deltas(chunks)
    assert "".join(d.content or "" for d in deltas) == '<tool_call>{"name": "get_weather", "argu'
    assert chunks[-1].choices[0].finish_reason == "length"


def test_text_after_a_call_ends_with_tool_calls() -> None:
    chunks = _run(TAGGED, [CALL, "\nDone."])
    assert _deltas(chunks)[-1].content == "Done."  # the whitespace after the call dropped
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_nothing_left_at_the_end_still_sends_the_finish() -> None:
    chunks = _run(TAGGED, [CALL, "\n"])
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert _deltas(chunks)[-1].tool_calls is not None


PIECES = st.lists(
    st.sampled_from(
        [CALL, "<tool_call>", "</tool_call>", CALL[12:-13], "<tool", "_call>", "Hi", " ", "\n"]
    ),
    max_size=10,
)


@given(pieces=PIECES, fmt=st.sampled_from(Format))
def test_any_stream_assembles_to_the_whole_answer(pieces: list[str], fmt: Format) -> None:
    """What a client joins from the chunks is the non-streaming message, and only the last
    chunk says how the choice ended."""
    parser = Parser(fmt, TAGGED.names)
    chunks = _run(parser, pieces)
    deltas = _deltas(chunks)
    whole = parser.read("".join(pieces))
    assert "".join(d.content or "" for d in deltas) == (whole.content or "")
    streamed = [t for d in deltas for t in d.tool_calls or []]
    assert [(t.function.name, t.function.arguments) for t in streamed] == [
        (c.name, c.arguments) for c in whole.calls
    ]
    assert [t.index for t in streamed] == list(range(len(streamed)))
    finishes = [c.choices[0].finish_reason for c in chunks]
    assert finishes[:-1] == [None] * (len(chunks) - 1)
    assert finishes[-1] == ("tool_calls" if whole.calls else "stop")
