"""Jobs as a careful client handles them: an idempotency key per job, UNAVAILABLE retried, and
an audit at the end that counts jobs lost and jobs created or delivered twice."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter

import grpc

from chaos.calls import Metadata
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import jobs_pb2, jobs_pb2_grpc

LIVE = (jobs_pb2.JOB_STATE_QUEUED, jobs_pb2.JOB_STATE_RUNNING)
RETRIED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class JobBook:
    """Every job one caller submitted and was told was accepted, by idempotency key."""

    def __init__(self, stub: jobs_pb2_grpc.JobServiceStub, metadata: Metadata) -> None:
        self.stub = stub
        self.metadata = metadata
        self.run = secrets.token_hex(4)
        self.acked: dict[str, str] = {}
        self.refusals: Counter[str] = Counter()
        self.last_ack = 0.0
        self.read: list[jobs_pb2.Job] = []  # every job as GetJob returned it at the audit

    async def submit(self, i: int, give_up_s: float = 300) -> None:
        """Submit job `i` until the service acknowledges it (the same key on every retry)."""
        request = pb.GenerateRequest(
            messages=[pb.ChatMessage(role="user", content=f"Count from {i} to {i + 5}.")],
            sampling=pb.SamplingParams(temperature=0),
            stopping=pb.StoppingCriteria(max_new_tokens=6),
        )
        key = f"{self.run}-{i}"
        deadline = time.monotonic() + give_up_s
        while True:
            try:
                reply = await self.stub.SubmitJob(
                    jobs_pb2.SubmitJobRequest(request=request, idempotency_key=key),
                    metadata=self.metadata,
                    timeout=10,
                )
            except grpc.aio.AioRpcError as error:
                self.refusals[error.code().name] += 1
                if error.code() not in RETRIED or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
                continue
            self.acked[key] = reply.job.job_id
            self.last_ack = time.monotonic()
            return

    async def jobs(self) -> list[jobs_pb2.Job]:
        reply = await self.stub.ListJobs(
            jobs_pb2.ListJobsRequest(page_size=1000), metadata=self.metadata, timeout=30
        )
        return list(reply.jobs)

    async def any_running(self) -> bool:
        return any(job.state == jobs_pb2.JOB_STATE_RUNNING for job in await self.jobs())

    async def settle(self, timeout_s: float) -> list[jobs_pb2.Job]:
        """Poll until no acknowledged job is queued or running (or `timeout_s` passes).

        Each acknowledged job by its id, not a count of ended jobs: the caller's listing may
        hold jobs it was never told were accepted (a probe's), and counting those would end the
        wait while an acknowledged job still runs, which the audit would then count as lost.
        """
        deadline = time.monotonic() + timeout_s
        waiting_for = set(self.acked.values())
        while True:
            try:
                jobs = await self.jobs()
            except grpc.aio.AioRpcError:
                jobs = []
            ended = {job.job_id for job in jobs if job.state not in LIVE}
            if waiting_for <= ended or time.monotonic() > deadline:
                return jobs
            await asyncio.sleep(0.5)

    async def audit(self, listed: list[jobs_pb2.Job]) -> tuple[int, int]:
        """(lost, duplicated): acknowledged jobs not SUCCEEDED; jobs beyond one per key, or a
        result delivered twice to a watcher. ListJobs returns few fields: each job is read."""
        jobs = self.read = [await self.get(job.job_id) for job in listed]
        by_id = {job.job_id: job for job in jobs}
        lost = sum(
            1
            for job_id in self.acked.values()
            if job_id not in by_id or by_id[job_id].state != jobs_pb2.JOB_STATE_SUCCEEDED
        )
        keys = Counter(job.idempotency_key for job in jobs)
        duplicated = sum(n - 1 for n in keys.values())
        for job_id in self.acked.values():
            if job_id in by_id and not await self.delivered_once(by_id[job_id]):
                duplicated += 1
        return lost, duplicated

    async def get(self, job_id: str) -> jobs_pb2.Job:
        reply = await self.stub.GetJob(
            jobs_pb2.GetJobRequest(job_id=job_id), metadata=self.metadata, timeout=30
        )
        job: jobs_pb2.Job = reply.job
        return job

    async def delivered_once(self, job: jobs_pb2.Job) -> bool:
        """What a watcher sees: one started, one final, each token index once, log = result."""
        events = [
            reply.event
            async for reply in self.stub.WatchJob(
                jobs_pb2.WatchJobRequest(job_id=job.job_id), metadata=self.metadata, timeout=30
            )
        ]
        kinds = [event.WhichOneof("event") for event in events]
        counts = [e.delta.generated_token_count for e in events if e.HasField("delta")]
        tokens = [t for e in events if e.HasField("delta") for t in e.delta.token_ids]
        return (
            kinds.count("started") == 1
            and kinds.count("final") == 1
            and counts == sorted(set(counts))
            and tokens == list(job.result.token_ids)
        )

    def reruns(self) -> int:
        """Attempts beyond the first, over the jobs read at the audit."""
        return sum(max(job.attempts - 1, 0) for job in self.read)
