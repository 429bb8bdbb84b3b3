"""JobService: submit, inspect, watch, cancel and list the caller's durable generation jobs."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import grpc
from google.protobuf import timestamp_pb2

from seseragi.api.convert import responses
from seseragi.api.convert.requests import MAX_REQUEST_ID_LENGTH
from seseragi.api.errors import (
    FieldViolation,
    InvalidRequest,
    NotReady,
    abort,
    error_boundary,
)
from seseragi.api.generations import parse
from seseragi.api.identity import caller
from seseragi.api.limits import CallerSlots
from seseragi.jobs.store import JobEnded, JobNotFound, JobRecord, JobStore
from seseragi.jobs.tail import LogTail
from seseragi.runtime.backend import Backend
from seseragi.settings import ServeSettings
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import jobs_pb2, jobs_pb2_grpc

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
PAGE_TOKEN = re.compile(r"[0-9]{1,9}")  # an offset in ASCII digits, as ListJobs writes it
STATES = {
    "queued": jobs_pb2.JOB_STATE_QUEUED,
    "running": jobs_pb2.JOB_STATE_RUNNING,
    "succeeded": jobs_pb2.JOB_STATE_SUCCEEDED,
    "failed": jobs_pb2.JOB_STATE_FAILED,
    "cancelled": jobs_pb2.JOB_STATE_CANCELLED,
}


def _timestamp(ms: int) -> timestamp_pb2.Timestamp:
    value = timestamp_pb2.Timestamp()
    value.FromMilliseconds(ms)
    return value


def job_message(record: JobRecord, *, with_result: bool) -> jobs_pb2.Job:
    job = jobs_pb2.Job(
        job_id=record.job_id,
        state=STATES.get(record.state, jobs_pb2.JOB_STATE_UNSPECIFIED),
        create_time=_timestamp(record.created_ms),
        update_time=_timestamp(record.updated_ms),
        generated_token_count=record.tokens,
        attempts=record.attempts,
        idempotency_key=record.idempotency_key,
    )
    if with_result and record.result:
        job.result.ParseFromString(record.result)
    if record.error_code:
        job.error.CopyFrom(jobs_pb2.JobError(code=record.error_code, message=record.error_message))
    return job


class JobServicer(jobs_pb2_grpc.JobServiceServicer):
    def __init__(self, settings: ServeSettings, store: JobStore, tail: LogTail) -> None:
        self._settings = settings
        self._store = store
        self._tail = tail
        self._backend: Backend | None = None
        self._draining = False
        # Each open watch reads Redis as its job's log grows: one caller may not hold them all.
        self._watches = CallerSlots(
            settings.max_watches_per_caller, "WatchJob streams open", "WATCH_LIMIT"
        )

    def _caller(self, context: grpc.aio.ServicerContext) -> str:
        return caller(context, self._settings.edge_secret)

    async def close(self) -> None:
        await self._tail.close()

    def drain(self) -> None:
        """Refuse new submissions and watches with UNAVAILABLE; the job queue keeps them safe."""
        self._draining = True

    def attach(self, backend: Backend) -> None:
        """Accept jobs once the model is loaded (submission validates with its tokenizer)."""
        self._backend = backend

    async def SubmitJob(
        self, request: jobs_pb2.SubmitJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.SubmitJobResponse:
        backend = self._backend
        if self._draining:
            await abort(context, NotReady("the server is shutting down"), "")
        if backend is None:
            await abort(context, NotReady("the model is still loading"), "")
        generate = pb.GenerateRequest()
        generate.CopyFrom(request.request)
        async with error_boundary(context, generate.request_id):
            if len(request.idempotency_key) > MAX_REQUEST_ID_LENGTH:
                limit = f"must be at most {MAX_REQUEST_ID_LENGTH} characters"
                raise InvalidRequest([FieldViolation("idempotency_key", limit, "TOO_LONG")])
            if generate.n > 1:  # a job's log and result hold one generation
                one = "a job runs one choice; submit one job per sample"
                raise InvalidRequest([FieldViolation("request.n", one, "UNSUPPORTED")])
            parsed = await parse(backend, generate, self._settings, None)
            # Fixed now, so every attempt of the job generates the same tokens.
            generate.request_id = parsed.request_id
            generate.sampling.seed = parsed.sampling.seed
            started = responses.started(parsed)
            owner = self._caller(context)
            job_id, created = await self._store.submit(
                owner,
                generate.SerializeToString(),
                started.SerializeToString(),
                request.idempotency_key,
            )
            record = await self._store.get(job_id, owner)
        return jobs_pb2.SubmitJobResponse(
            job=job_message(record, with_result=True), created=created
        )

    async def GetJob(
        self, request: jobs_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.GetJobResponse:
        async with error_boundary(context, ""):
            record = await self._store.get(request.job_id, self._caller(context))
        return jobs_pb2.GetJobResponse(job=job_message(record, with_result=True))

    async def CancelJob(
        self, request: jobs_pb2.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.CancelJobResponse:
        async with error_boundary(context, ""):
            record = await self._store.cancel(request.job_id, self._caller(context))
        return jobs_pb2.CancelJobResponse(job=job_message(record, with_result=True))

    async def ListJobs(
        self, request: jobs_pb2.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.ListJobsResponse:
        async with error_boundary(context, ""):
            size = request.page_size or DEFAULT_PAGE_SIZE
            if size > MAX_PAGE_SIZE:
                limit = f"must be at most {MAX_PAGE_SIZE}"
                raise InvalidRequest([FieldViolation("page_size", limit, "OUT_OF_RANGE")])
            offset = _page_offset(request.page_token)
            records, more = await self._store.page(self._caller(context), offset, size)
        return jobs_pb2.ListJobsResponse(
            jobs=[job_message(r, with_result=False) for r in records],
            next_page_token=str(offset + size) if more else "",
        )

    async def WatchJob(
        self, request: jobs_pb2.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[jobs_pb2.WatchJobResponse]:
        if self._draining:  # a watch is resumable: the caller reopens it on another replica
            await abort(context, NotReady("the server is shutting down"), "")
        async with error_boundary(context, ""):
            owner = self._caller(context)
            self._watches.acquire(owner)
            context.add_done_callback(lambda _: self._watches.release(owner))
            record = await self._store.get(request.job_id, owner)
            yield _wrap(pb.GenerateStreamResponse(started=pb.Started.FromString(record.started)))
            async for event in self._follow(request.job_id, owner, request.from_index):
                yield _wrap(event)

    async def _follow(
        self, job_id: str, owner: str, from_index: int
    ) -> AsyncIterator[pb.GenerateStreamResponse]:
        """The job's log after `from_index` tokens, then its live tail, until the job ends.

        Waiting for the tail holds no Redis connection: the replica's one `LogTail` reads for all.
        """
        after = b"0-0"
        stream = self._store.events_key(job_id)
        with self._tail.watching(stream):
            while True:
                entries = await self._store.log(job_id, after)
                if not entries:
                    heartbeat_s = self._settings.heartbeat_interval_seconds
                    if not await self._tail.wait(stream, after, heartbeat_s):
                        yield pb.GenerateStreamResponse(heartbeat=await self._heartbeat(job_id))
                    continue
                for entry in entries:
                    after = entry.entry_id
                    if entry.kind == "delta" and entry.tokens <= from_index:
                        continue
                    if entry.kind in ("delta", "final"):
                        yield pb.GenerateStreamResponse.FromString(entry.event)
                    if entry.kind == "final":
                        return
                    if entry.kind in ("failed", "cancelled"):
                        raise await self._ended(job_id, owner, entry.kind)

    async def _heartbeat(self, job_id: str) -> pb.Heartbeat:
        state = await self._store.state(job_id)
        if not state:  # expired while watched
            raise JobNotFound(f"no job {job_id!r}")
        return pb.Heartbeat(phase=pb.PHASE_QUEUED if state == "queued" else pb.PHASE_RUNNING)

    async def _ended(self, job_id: str, owner: str, kind: str) -> JobEnded:
        if kind == "cancelled":
            return JobEnded("CANCELLED", f"job {job_id} was cancelled", "JOB_CANCELLED")
        record = await self._store.get(job_id, owner)
        return JobEnded(record.error_code or "INTERNAL", record.error_message, "JOB_FAILED")


def _page_offset(token: str) -> int:
    """The offset a page token names; anything ListJobs did not hand out is INVALID_ARGUMENT."""
    if not token:
        return 0
    if not PAGE_TOKEN.fullmatch(token):
        raise InvalidRequest(
            [FieldViolation("page_token", "not a token ListJobs returned", "BAD_PAGE_TOKEN")]
        )
    return int(token)


def _wrap(event: pb.GenerateStreamResponse) -> jobs_pb2.WatchJobResponse:
    return jobs_pb2.WatchJobResponse(event=event)
