"""Drives the OpenAI API with the official `openai` SDK (AsyncOpenAI, stream=True) and times
every streamed chunk, as `grpc_load` does for GenerateStream, so the two faces compare."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import openai

from bench.metrics import RequestTiming
from bench.prompts import RenderedPrompt

CALL_TIMEOUT_SECONDS = 900.0


async def stream_one(
    client: openai.AsyncOpenAI,
    model: str,
    prompt: RenderedPrompt,
    max_new_tokens: int,
) -> RequestTiming:
    """One streamed `/v1/completions` call: the rendered prompt as text (the server encodes it
    to the very ids gRPC gets, checked by usage), greedy, exactly `max_new_tokens` tokens."""
    timing = RequestTiming(time.perf_counter())
    usage = None
    stream = await client.completions.create(
        model=model,
        prompt=prompt.text,
        max_tokens=max_new_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"min_tokens": max_new_tokens, "ignore_eos": True},
        timeout=CALL_TIMEOUT_SECONDS,
    )
    async for chunk in stream:
        if chunk.choices:
            timing.arrivals.append((time.perf_counter(), 1))  # one chunk per generated token
        if chunk.usage is not None:
            usage = chunk.usage
    if usage is None:
        raise RuntimeError("the stream ended without a usage chunk")
    if usage.completion_tokens != timing.tokens:
        raise RuntimeError(
            f"usage says {usage.completion_tokens} tokens, {timing.tokens} chunks arrived"
        )
    if usage.prompt_tokens != len(prompt.token_ids):
        raise RuntimeError(
            f"the server counted {usage.prompt_tokens} prompt tokens, not {len(prompt.token_ids)}"
        )
    return timing


async def run_concurrent(
    client: openai.AsyncOpenAI,
    model: str,
    prompts: Sequence[RenderedPrompt],
    max_new_tokens: int,
) -> tuple[list[RequestTiming], float]:
    """Every prompt at once; the timings and the wall time of the whole burst."""
    started = time.perf_counter()
    calls = [stream_one(client, model, p, max_new_tokens) for p in prompts]
    timings = list(await asyncio.gather(*calls))
    return timings, time.perf_counter() - started
