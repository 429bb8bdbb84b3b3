"""OpenAI bodies become the GenerateRequest the shared parser checks; its field names come back."""

from __future__ import annotations

import pytest

from seseragi.api.errors import InvalidRequest
from seseragi.api.http import convert
from seseragi.api.http.schemas import ChatCompletionRequest, CompletionRequest

pytestmark = pytest.mark.unit


def test_chat_body_maps_every_parameter() -> None:
    body = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}],
                },
            ],
            "max_completion_tokens": 7,
            "max_tokens": 99,
            "temperature": 0.5,
            "top_p": 0.9,
            "n": 2,
            "stop": "END",
            "seed": -1,
            "presence_penalty": 0.1,
            "frequency_penalty": 0.2,
            "logit_bias": {"42": -100},
            "logprobs": True,
            "top_logprobs": 3,
            "top_k": -1,
            "min_p": 0.05,
            "repetition_penalty": 1.1,
            "min_tokens": 2,
            "ignore_eos": True,
            "stop_token_ids": [5],
            "unknown_field": "ignored",
        }
    )
    message = convert.chat_request(body, "rid")
    assert [(m.role, m.content) for m in message.messages] == [
        ("system", "Be brief."),
        ("user", "Hi there"),
    ]
    assert message.stopping.max_new_tokens == 7  # max_completion_tokens wins
    assert message.sampling.seed == 2**64 - 1
    assert message.sampling.top_k == 0 and message.sampling.min_p == pytest.approx(0.05)
    assert dict(message.sampling.logit_bias) == {42: -100.0}
    assert list(message.stopping.stop_sequences) == ["END"]
    assert list(message.stopping.stop_token_ids) == [5] and message.stopping.ignore_eos
    assert message.stopping.min_new_tokens == 2 and message.n == 2
    assert message.options.logprobs and message.options.top_logprobs == 3
    assert message.request_id == "rid"


def test_unset_parameters_stay_unset_so_server_defaults_apply() -> None:
    body = CompletionRequest.model_validate({"model": "m", "prompt": "x"})
    message = convert.completion_request(body, "x", "rid")
    assert not message.sampling.HasField("temperature")
    assert not message.stopping.HasField("max_new_tokens")
    assert not message.options.logprobs


_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content[0].type",
        ),
        ({"messages": [], "logit_bias": {"word": 1}}, "logit_bias[word]"),
        ({"messages": [], "n": 0}, "n"),
        ({"messages": [], "max_tokens": 0}, "max_completion_tokens"),
        ({"messages": [], "response_format": {"type": "xml"}}, "response_format.type"),
        (
            {"messages": [], "response_format": {"type": "json_schema", "json_schema": {}}},
            "response_format.json_schema.schema",
        ),
        ({"messages": [], "tools": [{"type": "function"}]}, "tools[0]"),
        ({"messages": [], "tool_choice": "required"}, "tool_choice"),
        (
            {"messages": [], "tools": [_TOOL], "tool_choice": {"function": {"name": "nope"}}},
            "tool_choice.function.name",
        ),
        (
            {
                "messages": [],
                "tools": [_TOOL],
                "tool_choice": "required",
                "response_format": {"type": "json_object"},
            },
            "response_format",
        ),
    ],
)
def test_unsupported_or_invalid_values_name_the_parameter(
    body: dict[str, object], param: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        convert.chat_request(ChatCompletionRequest.model_validate({"model": "m", **body}), "r")
    assert refused.value.violations[0].field == param


@pytest.mark.parametrize(
    ("field", "param"),
    [
        ("sampling.temperature", "temperature"),
        ("stopping.max_new_tokens", "max_tokens"),
        ("stopping.stop_sequences[2]", "stop[2]"),
        ("sampling.logit_bias[7]", "logit_bias[7]"),
        ("messages[1].role", "messages[1].role"),
        ("options.top_logprobs", "top_logprobs"),
        ("prompt", "prompt"),
    ],
)
def test_protobuf_fields_map_back_to_openai_names(field: str, param: str) -> None:
    assert convert.param_name(field) == param


def test_a_list_of_prompts_is_one_request_each() -> None:
    body = CompletionRequest.model_validate({"model": "m", "prompt": ["a", "b"]})
    assert convert.prompts(body) == ["a", "b"]
    with pytest.raises(InvalidRequest):
        convert.prompts(CompletionRequest.model_validate({"model": "m", "prompt": []}))
