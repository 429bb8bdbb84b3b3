"""The OpenAI-compatible API, called with the official openai SDK against a real replica."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from seseragi.model.loader import LoadedModel
from tests.helpers import CAPITAL_QUESTION
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.integration
QUESTION = [{"role": "user", "content": CAPITAL_QUESTION}]


@pytest.fixture(scope="module")
def client(server: ServerThread) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.http_url, api_key="unused", max_retries=0) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def model_id(client: openai.OpenAI) -> str:
    return client.models.list().data[0].id


def test_models_lists_the_served_model(client: openai.OpenAI, server: ServerThread) -> None:
    listed = client.models.list().data
    assert [m.id for m in listed] == [server.settings.model]
    assert client.models.retrieve(listed[0].id).id == listed[0].id
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_chat_answers_with_usage(client: openai.OpenAI, model_id: str) -> None:
    reply = client.chat.completions.create(model=model_id, messages=QUESTION, temperature=0)
    assert "Paris" in (reply.choices[0].message.content or "")
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.model == model_id and reply.created > 0
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.prompt_tokens > 10
    usage = reply.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_stream_matches_the_whole_answer(client: openai.OpenAI, model_id: str) -> None:
    whole = client.chat.completions.create(model=model_id, messages=QUESTION, temperature=0)
    chunks = list(
        client.chat.completions.create(
            model=model_id,
            messages=QUESTION,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) > 3  # one chunk per delta, not one at the end
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        whole.choices[0].message.content
    )
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishing == [content[-1]]  # the reason rides on the last content chunk
    assert finishing[0].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage


def test_stream_ends_with_done(server: ServerThread, model_id: str) -> None:
    body = {"model": model_id, "prompt": "Once", "max_tokens": 3, "stream": True}
    with httpx.stream("POST", f"{server.http_url}/completions", json=body, timeout=60) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in reply.iter_lines() if line]
    data = [line for line in lines if not line.startswith(":")]  # comments keep proxies awake
    assert all(line.startswith("data: ") for line in data)
    assert data[-1] == "data: [DONE]"
    objects = [json.loads(line.removeprefix("data: ")) for line in data[:-1]]
    assert all(o["object"] == "text_completion" for o in objects)
    assert objects[-1]["choices"][0]["finish_reason"] == "length"


def test_completions_with_stop_and_max_tokens(client: openai.OpenAI, model_id: str) -> None:
    cut = client.completions.create(
        model=model_id, prompt="1, 2, 3, 4,", max_tokens=20, temperature=0, stop=[" 6"]
    )
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].text.startswith(" 5") and "6" not in cut.choices[0].text
    short = client.completions.create(model=model_id, prompt="1, 2, 3", max_tokens=2)
    assert short.choices[0].finish_reason == "length"
    assert short.usage is not None and short.usage.completion_tokens == 2


def test_seeded_choices_repeat_and_differ(client: openai.OpenAI, model_id: str) -> None:
    def sample() -> list[str]:
        reply = client.chat.completions.create(
            model=model_id,
            messages=[{"role": "user", "content": "Name a colour."}],
            n=3,
            seed=1234,
            temperature=1.0,
            max_tokens=12,
        )
        assert [c.index for c in reply.choices] == [0, 1, 2]
        return [c.message.content or "" for c in reply.choices]

    first = sample()
    assert sample() == first
    assert len(set(first)) > 1, first


def test_logprobs_in_openai_shape(client: openai.OpenAI, model_id: str) -> None:
    reply = client.chat.completions.create(
        model=model_id, messages=QUESTION, max_tokens=4, logprobs=True, top_logprobs=2
    )
    content = reply.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None and len(content) == reply.usage.completion_tokens  # type: ignore[union-attr]
    assert all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in content)
    legacy = client.completions.create(
        model=model_id, prompt="The sky is", max_tokens=3, logprobs=2
    )
    lp = legacy.choices[0].logprobs
    assert lp is not None and lp.tokens is not None and len(lp.tokens) == 3
    assert lp.top_logprobs is not None and all(len(top) == 2 for top in lp.top_logprobs)
    assert "".join(lp.tokens) == legacy.choices[0].text


def test_logit_bias_and_stop_token_ids(
    client: openai.OpenAI, model_id: str, server: ServerThread
) -> None:
    """logit_bias bans the greedy first token; vLLM's stop_token_ids (extra_body) stop at it."""
    prompt = "1, 2, 3,"
    greedy = client.completions.create(model=model_id, prompt=prompt, max_tokens=1, temperature=0)
    assert server.running is not None and server.running.backend is not None
    tokenizer = server.running.backend.tokenizer
    first = tokenizer.encode(greedy.choices[0].text, add_special_tokens=False)[0]
    banned = client.completions.create(
        model=model_id, prompt=prompt, max_tokens=1, temperature=0, logit_bias={str(first): -100}
    )
    assert banned.choices[0].text != greedy.choices[0].text
    stopped = client.completions.create(
        model=model_id,
        prompt=prompt,
        max_tokens=5,
        temperature=0,
        extra_body={"stop_token_ids": [first]},
    )
    assert stopped.choices[0].text == "" and stopped.choices[0].finish_reason == "stop"
    assert stopped.usage is not None and stopped.usage.completion_tokens == 1
    held = client.completions.create(
        model=model_id,
        prompt=prompt,
        max_tokens=5,
        temperature=0,
        extra_body={"stop_token_ids": [first], "min_tokens": 2, "ignore_eos": True},
    )
    assert held.usage is not None and held.usage.completion_tokens >= 2


def test_errors_map_to_sdk_classes(client: openai.OpenAI, model_id: str) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=model_id, messages=QUESTION, temperature=3)
    assert bad.value.param == "temperature" and bad.value.code == "out_of_range"
    with pytest.raises(openai.BadRequestError) as stop:
        client.chat.completions.create(model=model_id, messages=QUESTION, stop=["ok", ""])
    assert stop.value.param == "stop[1]"
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=QUESTION)
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.APIStatusError) as long:
        client.completions.create(model=model_id, prompt="word " * 5000)
    assert long.value.status_code == 413 and long.value.param == "prompt"  # type: ignore[attr-defined]


def test_server_busy_is_a_rate_limit_with_retry_after(loaded_model: LoadedModel) -> None:
    settings = make_settings(max_running_requests=1, max_queued_requests=0)
    with (
        ServerThread(settings, loaded_model) as busy,
        openai.OpenAI(base_url=busy.http_url, api_key="x", max_retries=0) as sdk,
    ):
        running = sdk.completions.create(
            model=settings.model,
            prompt="Tell a long story.",
            max_tokens=200,
            stream=True,
            extra_body={"min_tokens": 200},
        )
        next(iter(running))
        with pytest.raises(openai.RateLimitError) as refused:
            sdk.completions.create(model=settings.model, prompt="Hi", max_tokens=2)
        assert int(refused.value.response.headers["retry-after"]) >= 1
        running.close()
