"""The openai SDK through a real Envoy: the token is the API key, streams arrive unbuffered, and
the model's own tool calls ("auto") come back as OpenAI's `tool_calls`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from seseragi.edge import tokens
from seseragi.model.loader import LoadedModel
from tests import clients
from tests.edges import EnvoyProcess, edge_settings
from tests.helpers import CAPITAL_QUESTION, CONVERSATION, WEATHER_TOOL
from tests.servers import REPO_ROOT, ServerThread, make_settings

pytestmark = pytest.mark.e2e
SECRET = "test-edge-secret"
QUESTION = [{"role": "user", "content": CAPITAL_QUESTION}]
TOOL_REQUEST: dict[str, Any] = {
    "messages": CONVERSATION,  # shows the model an earlier call to repeat (tests/helpers.py)
    "tools": [WEATHER_TOOL],
    "tool_choice": "auto",
    "temperature": 0,
    "max_tokens": 60,
}


@pytest.fixture(scope="module")
def replica(loaded_model: LoadedModel) -> Iterator[ServerThread]:
    settings = make_settings(edge_secret=SECRET, max_requests_per_caller=1)
    with ServerThread(settings, loaded_model) as running:
        yield running


@pytest.fixture(scope="module")
def envoy(
    replica: ServerThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyProcess]:
    tmp = tmp_path_factory.mktemp("edge-openai")
    assert replica.running is not None and replica.running.http is not None
    settings = edge_settings(
        tmp, [replica.target], edge_http_upstreams=f"127.0.0.1:{replica.running.http.port}"
    )
    with EnvoyProcess(settings, tmp / "envoy") as running:
        wait_http_routable(running)
        yield running


def wait_http_routable(envoy: EnvoyProcess) -> None:
    """Envoy's HTTP cluster turns healthy a moment after the gRPC one (its own checks)."""
    deadline = time.monotonic() + 30
    while envoy.stat("cluster.seseragi_http.membership_healthy") < 1:
        assert time.monotonic() < deadline, envoy.log_text()
        time.sleep(0.2)


def sdk(envoy: EnvoyProcess, subject: str) -> openai.OpenAI:
    key = tokens.mint(envoy.settings, subject, 600)
    return openai.OpenAI(base_url=f"{envoy.url}/v1", api_key=key, max_retries=0)


def test_chat_through_envoy_with_the_token_as_api_key(envoy: EnvoyProcess) -> None:
    with sdk(envoy, "alice") as client:
        model = client.models.list().data[0].id
        reply = client.chat.completions.create(model=model, messages=QUESTION, temperature=0)
    assert "Paris" in (reply.choices[0].message.content or "")


def test_async_stream_arrives_chunk_by_chunk(envoy: EnvoyProcess, replica: ServerThread) -> None:
    """Envoy buffers nothing: the first text arrives long before the last."""
    key = tokens.mint(envoy.settings, "bob", 600)

    async def stream() -> list[tuple[float, openai.types.chat.ChatCompletionChunk]]:
        async with openai.AsyncOpenAI(base_url=f"{envoy.url}/v1", api_key=key) as client:
            chunks = await client.chat.completions.create(
                model=replica.settings.model,
                messages=[{"role": "user", "content": "Tell me a story about a river."}],
                max_tokens=40,
                stream=True,
                stream_options={"include_usage": True},
                extra_body={"min_tokens": 40},
            )
            return [(time.monotonic(), chunk) async for chunk in chunks]

    arrivals = asyncio.run(stream())
    texts = [t for t, c in arrivals if c.choices and c.choices[0].delta.content]
    assert len(texts) > 10
    assert texts[-1] - texts[0] > 0.5 * (arrivals[-1][0] - arrivals[0][0])
    usage = arrivals[-1][1].usage
    assert usage is not None and usage.completion_tokens == 40


def _check_call(call_id: str | None, kind: str | None, name: str | None, args: str | None) -> None:
    assert call_id is not None and call_id.startswith("call_") and kind == "function"
    assert name == "get_weather" and json.loads(args or "")["city"] == "Tokyo"


def test_auto_tool_call_through_envoy_with_the_sync_sdk(
    envoy: EnvoyProcess, replica: ServerThread
) -> None:
    with sdk(envoy, "tool-sync") as client:
        reply = client.chat.completions.create(model=replica.settings.model, **TOOL_REQUEST)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls or []
    _check_call(call.id, call.type, call.function.name, call.function.arguments)


def test_auto_tool_call_streams_through_envoy_with_the_async_sdk(
    envoy: EnvoyProcess, replica: ServerThread
) -> None:
    key = tokens.mint(envoy.settings, "tool-async", 600)

    async def ask() -> list[ChatCompletionChunk]:
        async with openai.AsyncOpenAI(
            base_url=f"{envoy.url}/v1", api_key=key, max_retries=0
        ) as client:
            chunks = await client.chat.completions.create(
                model=replica.settings.model, stream=True, **TOOL_REQUEST
            )
            return [chunk async for chunk in chunks]

    chunks = asyncio.run(ask())
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant" and not any(d.content for d in deltas)
    [streamed] = [t for d in deltas for t in d.tool_calls or []]
    assert streamed.index == 0 and streamed.function is not None
    _check_call(streamed.id, streamed.type, streamed.function.name, streamed.function.arguments)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_missing_or_forged_token_is_an_authentication_error(envoy: EnvoyProcess) -> None:
    for key in ("not-a-token", tokens.mint(envoy.settings, "eve", 600) + "x"):
        with (
            openai.OpenAI(base_url=f"{envoy.url}/v1", api_key=key, max_retries=0) as client,
            pytest.raises(openai.AuthenticationError),
        ):
            client.models.list()


def test_bypassing_envoy_is_refused(replica: ServerThread) -> None:
    with (
        openai.OpenAI(base_url=replica.http_url, api_key="x", max_retries=0) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.models.list()


def test_a_caller_over_its_cap_is_rate_limited(envoy: EnvoyProcess, replica: ServerThread) -> None:
    """The subject Envoy verified reaches the replica, whose per-caller cap (1 here) answers."""
    with sdk(envoy, "carol") as client, sdk(envoy, "dave") as other:
        running = client.completions.create(
            model=replica.settings.model,
            prompt="Count to a hundred:",
            max_tokens=100,
            stream=True,
            extra_body={"min_tokens": 100},
        )
        next(iter(running))
        with pytest.raises(openai.RateLimitError):
            client.completions.create(model=replica.settings.model, prompt="Hi", max_tokens=2)
        assert other.completions.create(model=replica.settings.model, prompt="Hi", max_tokens=2)
        running.close()


def test_the_openai_npm_package_streams_through_envoy(envoy: EnvoyProcess) -> None:
    script = REPO_ROOT / "clients" / "node" / "openai-chat.mjs"
    args = [clients.node(), str(script), "--base-url", f"{envoy.url}/v1", CAPITAL_QUESTION]
    answered = clients.run(args, SESERAGI_TOKEN=tokens.mint(envoy.settings, "node", 600))
    assert answered.returncode == 0, answered.stderr
    assert "Paris" in answered.stdout and "usage: " in answered.stdout
    refused = clients.run(args, SESERAGI_TOKEN="not-a-token")
    assert refused.returncode == 2 and "AuthenticationError 401" in refused.stderr


def test_the_openai_npm_package_makes_a_tool_call_through_envoy(envoy: EnvoyProcess) -> None:
    script = REPO_ROOT / "clients" / "node" / "openai-tools.mjs"
    args = [clients.node(), str(script), "--base-url", f"{envoy.url}/v1"]
    answered = clients.run(args, SESERAGI_TOKEN=tokens.mint(envoy.settings, "node", 600))
    assert answered.returncode == 0, answered.stderr
    name, arguments = answered.stdout.splitlines()[0].split(" ", 1)
    assert name == "get_weather"
    assert set(json.loads(arguments)) == {"city"}
    assert answered.stdout.splitlines()[-1] == "finish_reason: tool_calls"
