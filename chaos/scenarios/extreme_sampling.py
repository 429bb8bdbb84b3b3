"""Greedy streams share the batch with streams sending the most extreme accepted values."""

from __future__ import annotations

import asyncio

import grpc

from chaos.calls import Tally, counted, stream_request, stream_text
from chaos.outcome import Durations, Outcome
from chaos.stack import Stack
from seseragi.api.convert.requests import (
    MAX_REPETITION_PENALTY,
    MAX_TEMPERATURE,
    MIN_REPETITION_PENALTY,
)
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc

NAME = "extreme sampling values mixed into a batch"
LOAD = "16 streams"
MUST = "0 collateral failures"
TINY = 1.4e-45  # the smallest positive float32 (a denormal)
EXTREMES = [
    pb.SamplingParams(temperature=TINY),
    pb.SamplingParams(temperature=1e-5, repetition_penalty=MIN_REPETITION_PENALTY),
    pb.SamplingParams(temperature=MAX_TEMPERATURE, top_p=TINY),
    pb.SamplingParams(temperature=MAX_TEMPERATURE, top_k=2**31 - 1, seed=2**64 - 1),
    pb.SamplingParams(
        temperature=MAX_TEMPERATURE, top_k=1, repetition_penalty=MIN_REPETITION_PENALTY
    ),
    pb.SamplingParams(temperature=MAX_TEMPERATURE, repetition_penalty=MAX_REPETITION_PENALTY),
    pb.SamplingParams(temperature=0.0, repetition_penalty=MAX_REPETITION_PENALTY),
    pb.SamplingParams(
        temperature=MAX_TEMPERATURE,
        min_p=1.0,
        presence_penalty=2.0,
        frequency_penalty=-2.0,
        logit_bias={0: 100.0, 1: -100.0, 2: 100.0},
    ),
]
GREEDY = 8


def run(stack: Stack, durations: Durations) -> Outcome:
    return asyncio.run(_run(stack, durations))


async def _run(stack: Stack, durations: Durations) -> Outcome:
    tokens = durations.stream_tokens
    async with grpc.aio.insecure_channel(stack.edge.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        alone = await stream_text(stub, stream_request(0, tokens), stack.metadata(0))
        greedy, extreme = Tally(), Tally()
        texts = await asyncio.gather(
            *(
                counted(greedy, stream_text(stub, stream_request(0, tokens), stack.metadata(i)))
                for i in range(GREEDY)
            ),
            *(
                counted(
                    extreme,
                    stream_text(stub, stream_request(i, tokens, sampling), stack.metadata(8 + i)),
                )
                for i, sampling in enumerate(EXTREMES)
            ),
        )
    changed = sum(1 for text in texts[:GREEDY] if text is not None and text != alone)
    collateral = greedy.failed + changed
    return Outcome(
        NAME,
        LOAD,
        MUST,
        requests=greedy.total + extreme.total,
        failed=greedy.failed + extreme.failed,
        passed=collateral == 0 and extreme.failed == 0,
        detail=f"{GREEDY} greedy streams beside {len(EXTREMES)} extreme ones: greedy"
        f" {greedy.summary()}, {changed} with text different from a solo run; extreme"
        f" {extreme.summary()}",
    )
