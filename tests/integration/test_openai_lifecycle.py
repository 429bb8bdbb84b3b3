"""The OpenAI API while loading and when a client walks away mid-stream."""

from __future__ import annotations

import sys
import threading
import time
import traceback
import urllib.request

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from seseragi.model.loader import LoadedModel
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.integration


def cancelled(server: ServerThread) -> float:
    assert server.running is not None
    port = server.running.telemetry.metrics_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "seseragi_requests_cancelled_total"
    )


def engine_thread_stacks() -> str:
    """Where every engine thread is now: what a failure must show to be diagnosed."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    return "\n".join(
        f"--- {names.get(ident)}\n" + "".join(traceback.format_stack(frame))
        for ident, frame in sys._current_frames().items()
        if names.get(ident, "").startswith("seseragi-engine")
    )


def wait_cancelled(server: ServerThread, expected: float) -> None:
    """The engine counts the abort at its next step, just after the handle let go: wait for it
    (bounded), then nothing may still run. 500 tokens would take far longer than the bound."""
    deadline = time.monotonic() + 20
    while cancelled(server) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cancelled(server) == expected, (server.stats(), engine_thread_stacks())
    stats = server.stats()
    assert stats.in_flight == 0 and stats.running == 0 and stats.waiting == 0


def test_loading_answers_503_until_ready(loaded_model: LoadedModel) -> None:
    with ServerThread(make_settings(), loaded_model, ready=False) as server:
        base = server.http_url.removesuffix("/v1")
        assert httpx.get(f"{base}/health").status_code == 503
        with (
            openai.OpenAI(base_url=server.http_url, api_key="x", max_retries=0) as client,
            pytest.raises(openai.APIStatusError) as loading,
        ):
            client.completions.create(model=server.settings.model, prompt="Hi", max_tokens=2)
        assert loading.value.status_code == 503
        assert "loading" in loading.value.message
        server.become_ready()
        assert httpx.get(f"{base}/health").status_code == 200


def test_disconnect_mid_stream_cancels_the_generation(loaded_model: LoadedModel) -> None:
    with ServerThread(make_settings(), loaded_model) as server:
        before = cancelled(server)
        body = {
            "model": server.settings.model,
            "prompt": "Tell a very long story.",
            "max_tokens": 500,
            "min_tokens": 500,
            "stream": True,
        }
        received = 0
        with httpx.stream("POST", f"{server.http_url}/completions", json=body) as reply:
            for line in reply.iter_lines():
                received += line.startswith("data:")
                if received == 3:
                    break
            assert server.stats().in_flight == 1
        wait_cancelled(server, before + 1)


def test_disconnect_while_waiting_for_a_whole_answer_cancels_too(
    loaded_model: LoadedModel,
) -> None:
    with ServerThread(make_settings(), loaded_model) as server:
        before = cancelled(server)
        body = {
            "model": server.settings.model,
            "messages": [{"role": "user", "content": "Tell a very long story."}],
            "max_tokens": 500,
            "min_tokens": 500,
        }
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{server.http_url}/chat/completions", json=body, timeout=3)
        wait_cancelled(server, before + 1)
