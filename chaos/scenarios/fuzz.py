"""Random valid protobuf and random bytes at every method of both services, sent to replicas."""

from __future__ import annotations

import asyncio
import random
import time

import grpc

from chaos.calls import Tally
from chaos.fuzzing import fill, random_bytes
from chaos.outcome import Durations, Outcome
from chaos.stack import Stack
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import jobs_pb2

NAME = "fuzzed requests (random valid-protobuf and random bytes)"
LOAD = "10 min"
MUST = "0 INTERNAL, 0 crashes"
CONCURRENCY = 8
BAD = ("INTERNAL", "UNKNOWN")
GENERATION = "/seseragi.v1.GenerationService/"
JOBS = "/seseragi.v1.JobService/"
UNARY = {
    GENERATION + "Generate": pb.GenerateRequest,
    GENERATION + "Tokenize": pb.TokenizeRequest,
    GENERATION + "GetModelInfo": pb.GetModelInfoRequest,
    JOBS + "SubmitJob": jobs_pb2.SubmitJobRequest,
    JOBS + "GetJob": jobs_pb2.GetJobRequest,
    JOBS + "CancelJob": jobs_pb2.CancelJobRequest,
    JOBS + "ListJobs": jobs_pb2.ListJobsRequest,
}
STREAMING = {
    GENERATION + "GenerateStream": pb.GenerateStreamRequest,
    JOBS + "WatchJob": jobs_pb2.WatchJobRequest,
}


async def one_call(
    channel: grpc.aio.Channel, rng: random.Random, metadata: tuple[tuple[str, str], ...]
) -> tuple[str, str, str]:
    """(method, payload kind, status name) of one random call, bounded by a 10 s deadline."""
    method, message_type = rng.choice([*UNARY.items(), *STREAMING.items()])
    if rng.random() < 0.5:
        kind, payload = "message", fill(message_type(), rng).SerializeToString()
    else:
        kind, payload = "bytes", random_bytes(rng)
    try:
        if method in STREAMING:
            call = channel.unary_stream(method)(payload, metadata=metadata, timeout=10)
            async for _ in call:
                pass
        else:
            await channel.unary_unary(method)(payload, metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as error:
        return method, kind, error.code().name
    return method, kind, "OK"


def run(stack: Stack, durations: Durations) -> Outcome:
    return asyncio.run(_run(stack, durations))


async def _run(stack: Stack, durations: Durations) -> Outcome:
    tally, bad = Tally(), list[str]()
    ends = time.monotonic() + durations.fuzz_s

    async def worker(n: int) -> None:
        rng = random.Random(n)
        metadata = stack.direct(f"fuzz-{n}")
        async with grpc.aio.insecure_channel(stack.replicas[n % 2].target) as channel:
            while time.monotonic() < ends:
                method, kind, code = await one_call(channel, rng, metadata)
                tally.add(code)
                if code in BAD and len(bad) < 5:
                    bad.append(f"{method} ({kind}) → {code}")

    await asyncio.gather(*(worker(n) for n in range(CONCURRENCY)))
    alive = all(replica.alive() for replica in stack.replicas)
    internal = sum(tally.codes[code] for code in BAD)
    return Outcome(
        NAME,
        f"{durations.fuzz_s:g} s",
        MUST,
        requests=tally.total,
        failed=internal,
        passed=internal == 0 and alive,
        detail=f"{tally.summary()}; replicas {'alive' if alive else 'CRASHED'}"
        + (f"; first INTERNAL/UNKNOWN: {'; '.join(bad)}" if bad else ""),
    )
