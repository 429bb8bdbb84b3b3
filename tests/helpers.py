"""Small request builders and stream readers shared by the tests."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc

CAPITAL_QUESTION = "What is the capital of France?"
# tool_choice "auto": the small default model does not call tools unprompted, but greedy decoding
# repeats an earlier call in the conversation for the new question (get_weather, city Tokyo).
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
        },
    },
}
EARLIER_CALL = {
    "id": "call_paris",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'},
}
CONVERSATION = [
    {"role": "user", "content": "What is the weather like in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [EARLIER_CALL]},
    {"role": "user", "content": "What is the weather like in Tokyo?"},
]


def chat(
    question: str, *, max_new_tokens: int = 24, temperature: float = 0.0, **stopping: object
) -> pb.GenerateRequest:
    return pb.GenerateRequest(
        messages=[pb.ChatMessage(role="user", content=question)],
        sampling=pb.SamplingParams(temperature=temperature),
        stopping=pb.StoppingCriteria(max_new_tokens=max_new_tokens, **stopping),  # type: ignore[arg-type]
    )


def as_stream(request: pb.GenerateRequest) -> pb.GenerateStreamRequest:
    """Same fields, same numbers: the bytes of one are a valid message of the other."""
    return pb.GenerateStreamRequest.FromString(request.SerializeToString())


@dataclass
class StreamResult:
    kinds: list[str] = field(default_factory=list)
    deltas: list[pb.Delta] = field(default_factory=list)
    started: pb.Started | None = None
    final: pb.Final | None = None

    @property
    def text(self) -> str:
        return "".join(d.text for d in self.deltas)


def read_stream(events: Iterable[pb.GenerateStreamResponse]) -> StreamResult:
    result = StreamResult()
    for event in events:
        kind = event.WhichOneof("event")
        assert kind is not None
        result.kinds.append(kind)
        if kind == "started":
            result.started = event.started
        elif kind == "delta":
            result.deltas.append(event.delta)
        elif kind == "final":
            result.final = event.final
    return result


def stream_through_a_stop(target: str, token: str, stop: Callable[[], None]) -> None:
    """Start a 60-token stream with `token`, call `stop` once it has begun; it must still finish."""
    with grpc.insecure_channel(target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        request = as_stream(chat("Tell me about rivers.", max_new_tokens=60, min_new_tokens=60))
        events = stub.GenerateStream(
            request, metadata=(("authorization", f"Bearer {token}"),), timeout=300
        )
        assert next(events).HasField("started")
        stop()
        rest = read_stream(events)
    assert rest.final is not None and rest.final.usage.output_tokens == 60


def json_objects(text: str) -> list[dict[str, Any]]:
    """The JSON objects grpcurl prints one after another for a stream."""
    decoder = json.JSONDecoder()
    objects: list[dict[str, Any]] = []
    position = 0
    while (position := _skip_space(text, position)) < len(text):
        value, position = decoder.raw_decode(text, position)
        objects.append(value)
    return objects


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def python_examples(page: str) -> list[tuple[str, str]]:
    """A doc page's ```python blocks with the ```console output printed under each, in order.

    `page` is relative to the repository root ("README.md", "docs/clients.md").
    """
    text = (Path(__file__).resolve().parent.parent / page).read_text()
    pattern = r"^```python\n(.*?)^```\n\n[^`]*?```console\n(.*?)^```$"
    return re.findall(pattern, text, flags=re.MULTILINE | re.DOTALL)
