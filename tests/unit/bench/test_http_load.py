"""Parsing vLLM's server-sent events: token counts per event, usage and the end marker."""

from __future__ import annotations

import json

from bench.peers.http_load import completion_body, event_tokens, parse_event


def test_data_lines_parse_and_others_do_not() -> None:
    event = {"choices": [{"text": "Hi", "token_ids": [5, 6]}]}
    assert parse_event(b"data: " + json.dumps(event).encode() + b"\n") == event
    assert parse_event(b"data: [DONE]\n") is None
    assert parse_event(b"\n") is None
    assert parse_event(b": keep-alive\n") is None


def test_tokens_counted_from_ids_not_text() -> None:
    assert event_tokens({"choices": [{"text": "", "token_ids": [1, 2, 3]}]}) == 3
    assert event_tokens({"choices": [], "usage": {"completion_tokens": 9}}) == 0
    assert event_tokens({"choices": [{"text": "x", "token_ids": None}]}) == 0


def test_the_request_is_greedy_exact_length_and_streams_ids() -> None:
    body = completion_body([1, 2], 128)
    assert body["prompt"] == [1, 2]
    assert (body["max_tokens"], body["temperature"], body["ignore_eos"]) == (128, 0, True)
    assert body["stream"] and body["return_token_ids"]
    assert body["stream_options"] == {"include_usage": True}
