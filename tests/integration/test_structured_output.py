"""Structured output with the real model, through both APIs: JSON schemas, regexes, choices
and forced tool calls always come out valid; a bad grammar is refused before admission."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import jsonschema
import openai
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc
from tests.helpers import as_stream, chat, read_stream
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.integration
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 16},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "role": {"enum": ["admin", "user", "guest"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 3},
        "address": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 16},
                "country": {"enum": ["FR", "JP", "US"]},
            },
            "required": ["city", "country"],
            "additionalProperties": False,
        },
    },
    "required": ["name", "age", "role", "tags", "address"],
    "additionalProperties": False,
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 24},
                "unit": {"enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
ASK_PERSON = [{"role": "user", "content": "Describe a person living in Paris as JSON."}]
READING = {
    "type": "object",
    "properties": {"celsius": {"type": "integer", "minimum": -60, "maximum": 60}},
    "required": ["celsius"],
    "additionalProperties": False,
}
ASK_WEATHER = [{"role": "user", "content": "What is the weather like in Tokyo?"}]


@pytest.fixture(scope="module")
def client(server: ServerThread) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.http_url, api_key="unused", max_retries=0) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def model_id(server: ServerThread) -> str:
    return server.settings.model


def _person_samples(client: openai.OpenAI, model_id: str, seed: int) -> list[str]:
    reply = client.chat.completions.create(
        model=model_id,
        messages=ASK_PERSON,  # type: ignore[arg-type]
        temperature=1.0,
        seed=seed,
        n=5,
        max_tokens=160,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON, "strict": True},
        },
    )
    assert [c.finish_reason for c in reply.choices] == ["stop"] * 5
    return [c.message.content or "" for c in reply.choices]


def test_twenty_seeded_json_schema_samples_all_validate(
    client: openai.OpenAI, model_id: str
) -> None:
    with ThreadPoolExecutor(4) as pool:  # 4 calls of n=5, batched together by the engine
        batches = list(pool.map(lambda s: _person_samples(client, model_id, s), range(4)))
    samples = [text for batch in batches for text in batch]
    assert len(samples) == 20
    for text in samples:
        jsonschema.validate(json.loads(text), PERSON)
    assert len(set(samples)) > 1  # sampled, not one answer repeated
    assert _person_samples(client, model_id, 2) == batches[2]  # a seed repeats its choices


def test_json_object_is_a_json_object(client: openai.OpenAI, model_id: str) -> None:
    reply = client.chat.completions.create(
        model=model_id,
        messages=ASK_PERSON,  # type: ignore[arg-type]
        temperature=0,
        max_tokens=120,
        response_format={"type": "json_object"},
    )
    if reply.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)
    else:
        assert (reply.choices[0].message.content or "").startswith("{")


def test_max_tokens_cut_says_length(client: openai.OpenAI, model_id: str) -> None:
    reply = client.chat.completions.create(
        model=model_id,
        messages=ASK_PERSON,  # type: ignore[arg-type]
        temperature=0,
        max_tokens=5,
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}},
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.content and reply.choices[0].message.content[0] == "{"


def test_a_required_tool_call_returns_a_valid_tool_call(
    client: openai.OpenAI, model_id: str
) -> None:
    reply = client.chat.completions.create(
        model=model_id,
        messages=ASK_WEATHER,  # type: ignore[arg-type]
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="required",
        temperature=0,
        max_tokens=80,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER_TOOL["function"]["parameters"])  # type: ignore[index]


def test_a_named_tool_call_streams_as_tool_call_chunks(
    client: openai.OpenAI, model_id: str
) -> None:
    other = {"type": "function", "function": {"name": "get_time", "parameters": {}}}
    chunks = list(
        client.chat.completions.create(
            model=model_id,
            messages=ASK_WEATHER,  # type: ignore[arg-type]
            tools=[other, WEATHER_TOOL],  # type: ignore[list-item]
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            temperature=0,
            max_tokens=80,
            stream=True,
        )
    )
    calls = [c for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert len(calls) == 1 and calls[0].choices[0].finish_reason == "tool_calls"
    streamed = calls[0].choices[0].delta.tool_calls
    assert streamed is not None and streamed[0].function is not None
    assert streamed[0].function.name == "get_weather"
    arguments = json.loads(streamed[0].function.arguments or "")
    jsonschema.validate(arguments, WEATHER_TOOL["function"]["parameters"])  # type: ignore[index]


def test_an_invalid_schema_is_a_400_naming_response_format(
    client: openai.OpenAI, model_id: str
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model=model_id,
            messages=ASK_PERSON,  # type: ignore[arg-type]
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "bad", "schema": {"type": "nope"}},
            },
        )
    assert raised.value.body["param"] == "response_format"  # type: ignore[index]
    assert "nope" in raised.value.body["message"]  # type: ignore[index]


def _constrained(structured: pb.StructuredOutput, **stopping: object) -> pb.GenerateRequest:
    request = chat("Answer.", max_new_tokens=24, **stopping)
    request.structured_output.CopyFrom(structured)
    return request


def _stub(target: str) -> Iterator[generation_pb2_grpc.GenerationServiceStub]:
    with grpc.insecure_channel(target) as channel:
        yield generation_pb2_grpc.GenerationServiceStub(channel)


def _check_regex_and_choice(stub: generation_pb2_grpc.GenerationServiceStub) -> None:
    pattern = r"[0-9]{3}-[a-z]{2,5}"
    reply = stub.Generate(_constrained(pb.StructuredOutput(regex=pattern)), timeout=60)
    assert re.fullmatch(pattern, reply.text), reply.text
    assert reply.stop_reason == pb.STOP_REASON_END_OF_SEQUENCE
    choices = pb.StructuredOutput(choice=pb.StructuredChoices(values=["yes", "no", "maybe"]))
    request = _constrained(choices)
    request.sampling.temperature, request.sampling.seed, request.n = 1.0, 3, 3
    replies = stub.Generate(request, timeout=60).choices
    assert len(replies) == 3 and {c.text for c in replies} <= {"yes", "no", "maybe"}
    streamed = read_stream(stub.GenerateStream(as_stream(_constrained(choices)), timeout=60))
    assert streamed.text in {"yes", "no", "maybe"}


def test_regex_and_choice_over_grpc(stub: generation_pb2_grpc.GenerationServiceStub) -> None:
    _check_regex_and_choice(stub)


def test_an_invalid_grammar_is_invalid_argument_naming_the_field(
    stub: generation_pb2_grpc.GenerationServiceStub,
) -> None:
    _check_invalid_grammar(stub)


def _check_invalid_grammar(stub: generation_pb2_grpc.GenerationServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.Generate(_constrained(pb.StructuredOutput(regex="(")), timeout=30)
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    fields = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    assert fields == ["structured_output.regex"]


def test_model_info_reports_the_capability(
    stub: generation_pb2_grpc.GenerationServiceStub,
) -> None:
    info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
    assert info.capabilities.structured_output


@pytest.mark.parametrize(
    "overrides", [{"engine_process": True}, {"engine_runner": "padded"}], ids=["core", "padded"]
)
def test_other_engines_follow_grammars_too(
    loaded_model: LoadedModel, overrides: dict[str, object]
) -> None:
    """With a core process the grammar is compiled there (the front end holds no xgrammar)."""
    with ServerThread(make_settings(**overrides), loaded_model) as running:
        for stub in _stub(running.target):
            _check_regex_and_choice(stub)
            _check_invalid_grammar(stub)


def test_a_tool_result_goes_back_and_the_model_answers_from_it(
    client: openai.OpenAI, model_id: str
) -> None:
    """OpenAI's whole round trip: required call -> the caller runs it -> `tool` turn -> answer.

    The answer is asked for as JSON so a 135M model's reading of the result can be checked:
    free text from it mostly repeats the call it sees in the conversation."""
    asked = client.chat.completions.create(  # type: ignore[call-overload]
        model=model_id,
        messages=ASK_WEATHER,
        tools=[WEATHER_TOOL],
        tool_choice="required",
        temperature=0,
        max_tokens=80,
    )
    message = asked.choices[0].message
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    history = [
        *ASK_WEATHER,
        message.model_dump(exclude_none=True),  # the assistant turn as the SDK returned it
        {"role": "tool", "tool_call_id": call.id, "content": "Tokyo: 31 degrees celsius, sunny."},
    ]
    answer = client.chat.completions.create(  # type: ignore[call-overload]
        model=model_id,
        messages=history,
        tools=[WEATHER_TOOL],
        tool_choice="none",
        temperature=0,
        max_tokens=40,
        response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": READING}},
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "stop" and choice.message.tool_calls is None
    assert json.loads(choice.message.content or "") == {"celsius": 31}  # read from the result
