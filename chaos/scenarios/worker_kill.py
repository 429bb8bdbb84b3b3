"""SIGKILL a job worker three times at random moments while jobs are submitted and run."""

from __future__ import annotations

import asyncio
import random
import time

import grpc

from chaos.jobs import JobBook
from chaos.outcome import Durations, Outcome
from chaos.stack import Stack
from seseragi_contract.v1 import jobs_pb2, jobs_pb2_grpc

NAME = "worker SIGKILL ×3"
LOAD = "50 jobs"
MUST = "0 lost, 0 duplicated"
KILLS = 3


def run(stack: Stack, durations: Durations) -> Outcome:
    return asyncio.run(_run(stack, durations))


async def submit_slowly(book: JobBook, first: int, last: int) -> None:
    rng = random.Random()
    for i in range(first, last):
        await book.submit(i)
        await asyncio.sleep(rng.uniform(0.0, 0.3))


async def _run(stack: Stack, durations: Durations) -> Outcome:
    workers = stack.workers()
    rng = random.Random()
    kills = 0
    try:
        workers.start()
        workers.start()
        async with grpc.aio.insecure_channel(stack.edge.target) as channel:
            book = JobBook(jobs_pb2_grpc.JobServiceStub(channel), stack.caller("chaos-workers"))
            first_wave = durations.jobs // 5
            await asyncio.gather(*(book.submit(i) for i in range(first_wave)))
            later = asyncio.create_task(submit_slowly(book, first_wave, durations.jobs))
            started = time.monotonic()
            while kills < KILLS and time.monotonic() - started < 600:
                if await book.any_running():
                    await asyncio.sleep(rng.uniform(0.0, 1.0))
                    workers.sigkill_oldest()
                    workers.start()
                    kills += 1
                await asyncio.sleep(0.2)
            await later
            jobs = await book.settle(600)
            lost, duplicated = await book.audit(jobs)
    finally:
        workers.stop_all()
    return Outcome(
        NAME,
        f"{durations.jobs} jobs",
        MUST,
        requests=len(book.acked),
        failed=sum(1 for job in book.read if job.state != jobs_pb2.JOB_STATE_SUCCEEDED),
        lost=lost,
        duplicated=duplicated,
        passed=kills == KILLS and lost == 0 and duplicated == 0,
        detail=f"{kills} workers SIGKILLed while jobs ran, {len(book.acked)} jobs acknowledged,"
        f" {book.reruns()} reruns after reclaim (5 s visibility timeout)",
    )
