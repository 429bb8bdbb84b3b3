"""`tool_choice` "auto" with the real model and the openai SDK: the calls the model writes come
back as OpenAI's `tool_calls`, streamed and not; text stays text, and so does the JSON a
`response_format` asked for.

The 135M default model does not call tools unprompted, so each call here follows an earlier call
in the conversation (an assistant turn with `tool_calls`), which greedy decoding repeats for the
new question (with the call's result and an answer in between, the tagged case makes up a
`<tool_response>` instead). Its own template (no tools in it) gets the
JSON format; a Hermes/Qwen-style template set on the same model gets `<tool_call>` blocks.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator

import openai
import pytest

from seseragi.model.loader import LoadedModel
from seseragi.model.tokenizer import TextTokenizer
from tests.helpers import CONVERSATION, WEATHER_TOOL
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.integration
# Qwen2.5's way of showing tools and past calls, cut down to what this test needs.
TAGGED_TEMPLATE = """\
{%- if tools %}<|im_start|>system
You are a helpful assistant.

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}</tools>

For each function call, return a json object with function name and arguments within \
<tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
{% endif %}
{%- for message in messages %}<|im_start|>{{ message['role'] }}
{{ message['content'] }}<|im_end|>
{% endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


def _client(server: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.http_url, api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def client(server: ServerThread) -> Iterator[openai.OpenAI]:
    with _client(server) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def tagged_client(loaded_model: LoadedModel) -> Iterator[openai.OpenAI]:
    """The same model behind a template that teaches `<tool_call>` blocks."""
    hf_tokenizer = copy.deepcopy(loaded_model.tokenizer.hf_tokenizer)
    hf_tokenizer.chat_template = TAGGED_TEMPLATE
    tagged = dataclasses.replace(loaded_model, tokenizer=TextTokenizer(hf_tokenizer))
    with ServerThread(make_settings(), tagged) as running, _client(running) as sdk:
        yield sdk


def _ask(sdk: openai.OpenAI, **extra: object) -> object:
    return sdk.chat.completions.create(  # type: ignore[call-overload]
        model=make_settings().model,
        messages=CONVERSATION,
        tools=[WEATHER_TOOL],
        temperature=0,
        max_tokens=60,
        **extra,
    )


def _check_the_call(name: str | None, arguments: str | None) -> None:
    assert name == "get_weather"
    assert json.loads(arguments or "")["city"] == "Tokyo"


@pytest.mark.parametrize("sdk", ["client", "tagged_client"], ids=["json", "tagged"])
def test_the_models_own_call_comes_back_as_tool_calls(
    sdk: str, request: pytest.FixtureRequest
) -> None:
    reply = _ask(request.getfixturevalue(sdk))
    choice = reply.choices[0]  # type: ignore[attr-defined]
    assert choice.finish_reason == "tool_calls", choice.message.content
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    _check_the_call(call.function.name, call.function.arguments)


@pytest.mark.parametrize("sdk", ["client", "tagged_client"], ids=["json", "tagged"])
def test_the_call_streams_as_tool_call_deltas(sdk: str, request: pytest.FixtureRequest) -> None:
    chunks = list(_ask(request.getfixturevalue(sdk), stream=True))  # type: ignore[call-overload]
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant"
    assert all(not d.content for d in deltas), "the call's text must not leak as content"
    streamed = [t for d in deltas for t in d.tool_calls or []]
    assert [t.index for t in streamed] == [0]
    assert streamed[0].id.startswith("call_") and streamed[0].type == "function"
    _check_the_call(streamed[0].function.name, streamed[0].function.arguments)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_text_that_is_no_call_stays_content(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(  # type: ignore[call-overload]
        model=make_settings().model,
        messages=[{"role": "user", "content": "Tell me a joke."}],
        tools=[WEATHER_TOOL],
        temperature=0,
        max_tokens=30,
    )
    choice = whole.choices[0]
    assert choice.message.tool_calls is None and choice.finish_reason in ("stop", "length")
    assert choice.message.content and not choice.message.content.lstrip().startswith("{")
    chunks = list(
        client.chat.completions.create(  # type: ignore[call-overload]
            model=make_settings().model,
            messages=[{"role": "user", "content": "Tell me a joke."}],
            tools=[WEATHER_TOOL],
            temperature=0,
            max_tokens=30,
            stream=True,
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == choice.message.content
    assert chunks[-1].choices[0].finish_reason == choice.finish_reason


@pytest.mark.parametrize("sdk", ["client", "tagged_client"], ids=["json", "tagged"])
def test_a_json_response_format_is_content_even_when_it_looks_like_a_call(
    sdk: str, request: pytest.FixtureRequest
) -> None:
    # The same conversation that makes a call above; the format holds the answer to an object.
    client = request.getfixturevalue(sdk)
    whole = _ask(client, response_format={"type": "json_object"})
    choice = whole.choices[0]  # type: ignore[attr-defined]
    assert choice.message.tool_calls is None and choice.finish_reason != "tool_calls"
    assert isinstance(json.loads(choice.message.content), dict)
    chunks = list(_ask(client, response_format={"type": "json_object"}, stream=True))  # type: ignore[call-overload]
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert not any(d.tool_calls for d in deltas)
    assert "".join(d.content or "" for d in deltas) == choice.message.content
    assert chunks[-1].choices[0].finish_reason == choice.finish_reason
