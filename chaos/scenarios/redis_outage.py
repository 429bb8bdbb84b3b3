"""Freeze Redis (SIGSTOP: nothing answers, connections stay open) while streams and jobs run."""

from __future__ import annotations

import asyncio
import time

import grpc

from chaos.calls import Streams, Tally, counted
from chaos.jobs import JobBook
from chaos.outcome import Durations, Outcome
from chaos.stack import Stack
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import jobs_pb2, jobs_pb2_grpc

NAME = "Redis unreachable for 30 s"
LOAD = "streams + jobs"
MUST = "generation unaffected; jobs UNAVAILABLE then resume; 0 lost"
STREAMS = 8


def run(stack: Stack, durations: Durations) -> Outcome:
    return asyncio.run(_run(stack, durations))


async def probe_submits(book: JobBook, seconds: float, seen: Tally) -> None:
    """SubmitJob twice a second while Redis is frozen; each must be refused, not hang."""
    request = pb.GenerateRequest(messages=[pb.ChatMessage(role="user", content="Hello.")])
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        call = book.stub.SubmitJob(
            jobs_pb2.SubmitJobRequest(request=request, idempotency_key=f"{book.run}-probe"),
            metadata=book.metadata,
            timeout=10,
        )
        await counted(seen, call)
        await asyncio.sleep(0.5)


async def _run(stack: Stack, durations: Durations) -> Outcome:
    workers = stack.workers()
    load = Streams(stack.edge.target, stack.metadata, STREAMS, cache=pb.CACHE_POLICY_UNSPECIFIED)
    probes = Tally()
    facts: dict[str, float] = {}
    try:
        workers.start()
        workers.start()
        async with grpc.aio.insecure_channel(stack.edge.target) as channel:
            book = JobBook(jobs_pb2_grpc.JobServiceStub(channel), stack.caller("chaos-outage"))
            half = durations.jobs // 2
            await asyncio.gather(*(book.submit(i) for i in range(half)))
            while not await book.any_running():
                await asyncio.sleep(0.2)

            async def outage() -> None:
                stack.redis.freeze()
                try:
                    await probe_submits(book, durations.redis_outage_s, probes)
                finally:
                    stack.redis.thaw()
                thawed = time.monotonic()
                await asyncio.gather(*(book.submit(i) for i in range(half, durations.jobs)))
                facts["recover_s"] = book.last_ack - thawed

            await load.run(durations.stream_tokens, unary_loops=0, during=outage)
            jobs = await book.settle(600)
            lost, duplicated = await book.audit(jobs)
    finally:
        stack.redis.thaw()
        workers.stop_all()
    refused_right = set(probes.codes) <= {"UNAVAILABLE"}
    return Outcome(
        NAME.replace("30 s", f"{durations.redis_outage_s:g} s"),
        LOAD,
        MUST,
        requests=len(book.acked) + load.streams.total + probes.total,
        failed=load.streams.failed,
        lost=lost,
        duplicated=duplicated,
        recover_s=facts["recover_s"],
        passed=load.streams.failed == 0 and refused_right and lost == 0 and duplicated == 0,
        detail=f"{STREAMS} streams (result cache on) during the outage: {load.streams.summary()};"
        f" SubmitJob while frozen: {probes.summary()}, each answered within"
        f" {max(probes.seconds, default=0):.1f} s; {len(book.acked)} jobs acknowledged,"
        f" {book.reruns()} reruns; recovery = SIGCONT until the last job submitted after it"
        " was acknowledged",
    )
