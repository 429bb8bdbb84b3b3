"""Restart the job Redis (AOF) while jobs run and streams go on."""

from __future__ import annotations

import asyncio
import time

import grpc

from chaos.calls import Streams
from chaos.jobs import JobBook
from chaos.outcome import Durations, Outcome
from chaos.stack import Stack
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import jobs_pb2_grpc

NAME = "Redis restart (AOF) mid-jobs"
LOAD = "50 jobs"
MUST = "0 jobs lost; generation goes on meanwhile"
STREAMS = 8


def run(stack: Stack, durations: Durations) -> Outcome:
    return asyncio.run(_run(stack, durations))


async def _run(stack: Stack, durations: Durations) -> Outcome:
    workers = stack.workers()
    load = Streams(stack.edge.target, stack.metadata, STREAMS, cache=pb.CACHE_POLICY_UNSPECIFIED)
    facts: dict[str, float] = {}
    try:
        workers.start()
        workers.start()
        async with grpc.aio.insecure_channel(stack.edge.target) as channel:
            book = JobBook(jobs_pb2_grpc.JobServiceStub(channel), stack.caller("chaos-restart"))
            half = durations.jobs // 2
            await asyncio.gather(*(book.submit(i) for i in range(half)))
            while not await book.any_running():  # the workers load the model first
                await asyncio.sleep(0.2)

            async def restart() -> None:
                restarted = time.monotonic()
                await asyncio.to_thread(stack.redis.restart)
                facts["down_s"] = time.monotonic() - restarted
                await asyncio.gather(*(book.submit(i) for i in range(half, durations.jobs)))
                facts["recover_s"] = book.last_ack - restarted

            await load.run(durations.stream_tokens, unary_loops=0, during=restart)
            jobs = await book.settle(600)
            lost, duplicated = await book.audit(jobs)
    finally:
        workers.stop_all()
    return Outcome(
        NAME,
        f"{durations.jobs} jobs",
        MUST,
        requests=len(book.acked) + load.streams.total,
        failed=load.streams.failed,
        lost=lost,
        duplicated=duplicated,
        recover_s=facts["recover_s"],
        passed=lost == 0 and duplicated == 0 and load.streams.failed == 0,
        detail=f"{len(book.acked)} jobs acknowledged, {book.reruns()} reruns, SubmitJob"
        f" refusals retried: {dict(book.refusals) or 'none'}; Redis down"
        f" {facts['down_s']:.1f} s (SIGTERM, restart on its AOF); {STREAMS} streams meanwhile:"
        f" {load.streams.summary()}; recovery = restart until the last job submitted after it"
        " was acknowledged",
    )
