"""Calls through the edge, counted by gRPC status: the load every scenario puts on the stack."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc

Metadata = tuple[tuple[str, str], ...]
PROMPTS = ("Tell me about rivers.", "Describe a mountain.", "Write about the sea.")


@dataclass
class Tally:
    """Calls by their ending: OK or a status name."""

    codes: Counter[str] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # each call's code, as `seconds` holds them
    examples: dict[str, str] = field(default_factory=dict)  # one message per failing code

    @property
    def total(self) -> int:
        return sum(self.codes.values())

    @property
    def failed(self) -> int:
        return self.total - self.codes["OK"]

    def add(self, code: str, seconds: float = 0.0, message: str = "") -> None:
        self.codes[code] += 1
        if code != "OK":
            self.examples.setdefault(code, message[:160])
        self.seconds.append(seconds)
        self.order.append(code)

    def summary(self) -> str:
        """E.g. `OK 12, UNAVAILABLE 2 ("no healthy upstream")`."""
        return ", ".join(
            f"{code} {n}" + (f' ("{self.examples[code]}")' if self.examples.get(code) else "")
            for code, n in self.codes.most_common()
        )


def stream_request(
    i: int,
    tokens: int,
    sampling: pb.SamplingParams | None = None,
    cache: pb.CachePolicy.ValueType = pb.CACHE_POLICY_BYPASS,
) -> pb.GenerateStreamRequest:
    """Exactly `tokens` tokens (min = max), greedy unless `sampling` says otherwise."""
    return pb.GenerateStreamRequest(
        messages=[pb.ChatMessage(role="user", content=PROMPTS[i % len(PROMPTS)])],
        sampling=sampling or pb.SamplingParams(temperature=0),
        stopping=pb.StoppingCriteria(max_new_tokens=tokens, min_new_tokens=tokens),
        cache=cache,
    )


def unary_request(i: int, tokens: int = 4) -> pb.GenerateRequest:
    return pb.GenerateRequest(
        messages=[pb.ChatMessage(role="user", content=PROMPTS[i % len(PROMPTS)])],
        sampling=pb.SamplingParams(temperature=0),
        stopping=pb.StoppingCriteria(max_new_tokens=tokens, min_new_tokens=tokens),
        cache=pb.CACHE_POLICY_BYPASS,
    )


async def stream_text(
    stub: generation_pb2_grpc.GenerationServiceStub,
    request: pb.GenerateStreamRequest,
    metadata: Metadata,
    timeout_s: float = 600,
    on_token: Callable[[float], None] | None = None,
) -> str:
    """The whole text of one stream; raises AioRpcError, or RuntimeError without a final."""
    text, final = [], None
    async for event in stub.GenerateStream(request, metadata=metadata, timeout=timeout_s):
        kind = event.WhichOneof("event")
        if kind == "delta":
            text.append(event.delta.text)
            if on_token is not None:
                on_token(time.perf_counter())
        elif kind == "final":
            final = event.final
    if final is None:
        raise RuntimeError("the stream ended without a final message")
    return "".join(text)


async def counted(tally: Tally, call: Awaitable[Any]) -> Any:
    """Await `call`, recording how it ended; None when it failed."""
    started = time.perf_counter()
    try:
        result = await call
    except grpc.aio.AioRpcError as error:
        tally.add(error.code().name, time.perf_counter() - started, error.details() or "")
        return None
    except RuntimeError:
        tally.add("NO_FINAL", time.perf_counter() - started, "the stream ended without a final")
        return None
    tally.add("OK", time.perf_counter() - started)
    return result


async def unary_loop(
    stub: generation_pb2_grpc.GenerationServiceStub,
    metadata: Metadata,
    stop: asyncio.Event,
    tally: Tally,
    i: int = 0,
) -> None:
    """Unary Generate calls back to back until `stop`: the traffic that must survive by retries."""
    while not stop.is_set():
        if await counted(tally, stub.Generate(unary_request(i), metadata=metadata, timeout=120)):
            i += 1
        else:
            await asyncio.sleep(0.05)  # a refused call returns at once: do not spin


class Streams:
    """N streams at once through the edge, plus unary loops beside them until they end."""

    def __init__(
        self,
        target: str,
        metadata: Callable[[int], Metadata],
        count: int,
        cache: pb.CachePolicy.ValueType = pb.CACHE_POLICY_BYPASS,
    ) -> None:
        self.target = target
        self.cache = cache
        self.metadata = metadata
        self.count = count
        self.streams = Tally()
        self.unary = Tally()

    async def run(
        self, tokens: int, unary_loops: int, during: Callable[[], Awaitable[object]]
    ) -> None:
        """Start the streams and loops, await `during()` (the fault), then wait for all."""
        async with grpc.aio.insecure_channel(self.target) as channel:
            stub = generation_pb2_grpc.GenerationServiceStub(channel)
            stop = asyncio.Event()
            loops = [
                asyncio.create_task(unary_loop(stub, self.metadata(100 + i), stop, self.unary, i))
                for i in range(unary_loops)
            ]
            streams = [
                asyncio.create_task(
                    counted(
                        self.streams,
                        stream_text(
                            stub,
                            stream_request(i, tokens, cache=self.cache),
                            self.metadata(i),
                        ),
                    )
                )
                for i in range(self.count)
            ]
            await during()
            await asyncio.gather(*streams)
            stop.set()
            await asyncio.gather(*loops)
