"""Requests built from keyword arguments, and the WatchJob cursor that makes resuming safe."""

from __future__ import annotations

import pytest

from seseragi_client import build_request
from seseragi_client.requests import WatchCursor, generate_request, stream_request
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import jobs_pb2

pytestmark = pytest.mark.unit


def test_keywords_fill_the_request_and_unset_ones_stay_unset() -> None:
    request = generate_request("Hi", {"temperature": 0.0, "max_new_tokens": 8, "stop": ["\n"]})
    assert request.prompt == "Hi"
    assert request.sampling.HasField("temperature") and request.sampling.temperature == 0.0
    assert not request.sampling.HasField("seed")
    assert request.stopping.max_new_tokens == 8 and list(request.stopping.stop_sequences) == ["\n"]


def test_chat_messages_and_the_stream_request_match() -> None:
    request = build_request(messages=[("user", "Hello")], seed=7)
    streamed = stream_request(request)
    assert isinstance(streamed, pb.GenerateStreamRequest)
    assert streamed.messages[0].content == "Hello" and streamed.sampling.seed == 7
    assert not streamed.HasField("prompt")


def test_a_request_and_keywords_together_are_refused() -> None:
    with pytest.raises(TypeError):
        generate_request(pb.GenerateRequest(prompt="x"), {"seed": 1})


def watch(event: pb.GenerateStreamResponse) -> jobs_pb2.WatchJobResponse:
    return jobs_pb2.WatchJobResponse(event=event)


def test_the_cursor_resumes_after_the_last_delta_and_drops_a_repeated_started() -> None:
    cursor = WatchCursor("job-1")
    started = pb.GenerateStreamResponse(started=pb.Started(request_id="r"))
    delta = pb.GenerateStreamResponse(delta=pb.Delta(text="Pa", generated_token_count=3))
    assert cursor.accept(watch(started)) == started
    assert cursor.accept(watch(delta)) == delta
    assert cursor.request().from_index == 3
    assert cursor.accept(watch(started)) is None  # a resumed stream sends `started` again
