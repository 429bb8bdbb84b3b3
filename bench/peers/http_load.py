"""Streaming clients of vLLM's OpenAI server: /v1/completions with prompt token ids, over SSE.

Each client is a thread with its own `http.client` connection (the standard library is enough,
and the bench's own venv carries no HTTP client); every SSE event is timestamped on arrival.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.metrics import RequestTiming

MODEL_NAME = "smollm2"
CALL_TIMEOUT_SECONDS = 900.0


def completion_body(token_ids: Sequence[int], max_tokens: int) -> dict[str, Any]:
    """Greedy, exactly `max_tokens` new tokens, streamed with token ids and final usage."""
    return {
        "model": MODEL_NAME,
        "prompt": list(token_ids),
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
        "return_token_ids": True,
    }


def parse_event(line: bytes) -> dict[str, Any] | None:
    """The JSON of one `data:` line; None for blank lines, comments and the [DONE] marker."""
    text = line.decode().strip()
    if not text.startswith("data:"):
        return None
    payload = text[len("data:") :].strip()
    if payload == "[DONE]":
        return None
    event: dict[str, Any] = json.loads(payload)
    return event


def event_tokens(event: dict[str, Any]) -> int:
    """Tokens an event carries: its token ids (a usage-only event carries none)."""
    return sum(len(choice.get("token_ids") or []) for choice in event.get("choices", []))


def stream_one(port: int, token_ids: Sequence[int], max_tokens: int, name: str) -> RequestTiming:
    body = json.dumps(completion_body(token_ids, max_tokens)).encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=CALL_TIMEOUT_SECONDS)
    try:
        timing = RequestTiming(time.perf_counter())
        connection.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"{name}: HTTP {response.status}: {response.read()[:500]!r}")
        usage: dict[str, Any] = {}
        for line in response:
            event = parse_event(line)
            if event is None:
                continue
            if count := event_tokens(event):
                timing.arrivals.append((time.perf_counter(), count))
            usage = event.get("usage") or usage
    finally:
        connection.close()
    if usage.get("completion_tokens") != timing.tokens:
        raise RuntimeError(f"{name}: usage {usage} but the events carried {timing.tokens} tokens")
    return timing


def run_concurrent(
    port: int, prompts: Sequence[Sequence[int]], max_tokens: int, label: str
) -> tuple[list[RequestTiming], float]:
    """All prompts at once, released together; the timings and the wall time."""
    gate = threading.Barrier(len(prompts) + 1)

    def client(index: int) -> RequestTiming:
        gate.wait()
        return stream_one(port, prompts[index], max_tokens, f"{label}-{index}")

    with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
        futures = [pool.submit(client, i) for i in range(len(prompts))]
        gate.wait()
        started = time.perf_counter()
        timings = [future.result() for future in futures]
        wall = time.perf_counter() - started
    return timings, wall


def run_sequential(
    port: int, prompts: Sequence[Sequence[int]], max_tokens: int, label: str
) -> tuple[list[RequestTiming], float]:
    started = time.perf_counter()
    timings = [stream_one(port, ids, max_tokens, f"{label}-{i}") for i, ids in enumerate(prompts)]
    return timings, time.perf_counter() - started


def post(port: int, path: str) -> None:
    """A body-less POST (the dev server's /reset_prefix_cache)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST")
    with urllib.request.urlopen(request, timeout=30):
        pass


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False
