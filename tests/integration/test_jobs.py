"""JobService against a real Redis and the real model, with two replicas sharing one queue."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import grpc
import pytest

from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import jobs_pb2, jobs_pb2_grpc
from tests.helpers import CAPITAL_QUESTION, chat
from tests.redis_servers import delete_keys
from tests.servers import (
    REDIS_TEST_PREFIX,
    TEST_EDGE_SECRET,
    ServerThread,
    as_caller,
    make_settings,
)

pytestmark = pytest.mark.integration
ALICE = as_caller("alice")
BOB = as_caller("bob")


@pytest.fixture(scope="module")
def replicas(loaded_model: LoadedModel) -> Iterator[tuple[ServerThread, ServerThread]]:
    """A replica that runs jobs and one that only serves calls, sharing one Redis queue."""
    prefix = f"{REDIS_TEST_PREFIX}jobs-{secrets.token_hex(3)}:"
    runner = make_settings(redis_key_prefix=prefix, job_concurrency=2, edge_secret=TEST_EDGE_SECRET)
    front = make_settings(redis_key_prefix=prefix, job_concurrency=0, edge_secret=TEST_EDGE_SECRET)
    with ServerThread(runner, loaded_model) as a, ServerThread(front, loaded_model) as b:
        yield a, b
    delete_keys(runner.redis_url, prefix)


def stub_for(server: ServerThread) -> Iterator[jobs_pb2_grpc.JobServiceStub]:
    with grpc.insecure_channel(server.target) as channel:
        yield jobs_pb2_grpc.JobServiceStub(channel)


@pytest.fixture
def runner_jobs(
    replicas: tuple[ServerThread, ServerThread],
) -> Iterator[jobs_pb2_grpc.JobServiceStub]:
    yield from stub_for(replicas[0])


@pytest.fixture
def front_jobs(
    replicas: tuple[ServerThread, ServerThread],
) -> Iterator[jobs_pb2_grpc.JobServiceStub]:
    yield from stub_for(replicas[1])


def wait_until_ended(stub: jobs_pb2_grpc.JobServiceStub, job_id: str) -> jobs_pb2.Job:
    for _ in range(600):
        job = stub.GetJob(jobs_pb2.GetJobRequest(job_id=job_id), metadata=ALICE).job
        if job.state not in (jobs_pb2.JOB_STATE_QUEUED, jobs_pb2.JOB_STATE_RUNNING):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end")


def submit(
    stub: jobs_pb2_grpc.JobServiceStub, question: str, max_new_tokens: int = 12, key: str = ""
) -> jobs_pb2.SubmitJobResponse:
    request = jobs_pb2.SubmitJobRequest(
        request=chat(question, max_new_tokens=max_new_tokens), idempotency_key=key
    )
    response: jobs_pb2.SubmitJobResponse = stub.SubmitJob(request, metadata=ALICE, timeout=30)
    return response


def test_submit_runs_on_another_replica_and_returns_the_result(
    runner_jobs: jobs_pb2_grpc.JobServiceStub, front_jobs: jobs_pb2_grpc.JobServiceStub
) -> None:
    submitted = submit(front_jobs, CAPITAL_QUESTION)
    assert submitted.created
    # A free worker may claim the job before SubmitJob answers, so it is queued or already running.
    assert submitted.job.state in (jobs_pb2.JOB_STATE_QUEUED, jobs_pb2.JOB_STATE_RUNNING)
    job = wait_until_ended(front_jobs, submitted.job.job_id)
    assert job.state == jobs_pb2.JOB_STATE_SUCCEEDED
    assert "Paris" in job.result.text
    assert job.generated_token_count == job.result.usage.output_tokens == len(job.result.token_ids)
    assert job.attempts == 1


def test_watch_resumes_from_an_index_on_another_replica(
    runner_jobs: jobs_pb2_grpc.JobServiceStub, front_jobs: jobs_pb2_grpc.JobServiceStub
) -> None:
    job_id = submit(front_jobs, "Write a short poem about rivers.", max_new_tokens=40).job.job_id
    first = runner_jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id), metadata=ALICE)
    received_tokens: list[int] = []
    received_text = ""
    seen = 0
    for message in first:
        if message.event.HasField("delta"):
            received_tokens.extend(message.event.delta.token_ids)
            received_text += message.event.delta.text
            seen = message.event.delta.generated_token_count
            if seen >= 5:
                break
    first.cancel()  # the connection is lost mid-stream
    assert seen >= 5
    resumed = front_jobs.WatchJob(
        jobs_pb2.WatchJobRequest(job_id=job_id, from_index=seen), metadata=ALICE
    )
    rest = [m.event for m in resumed]
    assert rest[0].HasField("started") and rest[-1].HasField("final")
    deltas = [e.delta for e in rest if e.HasField("delta")]
    rest_tokens = [t for d in deltas for t in d.token_ids]
    job = wait_until_ended(front_jobs, job_id)
    assert rest_tokens == list(job.result.token_ids)[seen:]
    assert received_tokens + rest_tokens == list(job.result.token_ids)
    assert received_text + "".join(d.text for d in deltas) == job.result.text


def test_the_same_idempotency_key_returns_the_same_job(
    front_jobs: jobs_pb2_grpc.JobServiceStub,
) -> None:
    key = f"order-{secrets.token_hex(4)}"
    first = submit(front_jobs, "Name a river.", max_new_tokens=4, key=key)
    second = submit(front_jobs, "Name a river.", max_new_tokens=4, key=key)
    assert first.created and not second.created
    assert second.job.job_id == first.job.job_id
    assert wait_until_ended(front_jobs, first.job.job_id).attempts == 1


def test_another_caller_cannot_see_the_job(front_jobs: jobs_pb2_grpc.JobServiceStub) -> None:
    job_id = submit(front_jobs, "Name a mountain.", max_new_tokens=4).job.job_id
    for call, request in (
        (front_jobs.GetJob, jobs_pb2.GetJobRequest(job_id=job_id)),
        (front_jobs.CancelJob, jobs_pb2.CancelJobRequest(job_id=job_id)),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            call(request, metadata=BOB)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as refused:
        list(front_jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id), metadata=BOB))
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    theirs = front_jobs.ListJobs(jobs_pb2.ListJobsRequest(), metadata=BOB).jobs
    mine = front_jobs.ListJobs(jobs_pb2.ListJobsRequest(), metadata=ALICE).jobs
    assert job_id not in {j.job_id for j in theirs}
    assert job_id in {j.job_id for j in mine}


def test_invalid_request_is_refused_at_submission(front_jobs: jobs_pb2_grpc.JobServiceStub) -> None:
    request = chat("Hi", max_new_tokens=4)
    request.sampling.temperature = 5
    with pytest.raises(grpc.RpcError) as refused:
        front_jobs.SubmitJob(jobs_pb2.SubmitJobRequest(request=request), metadata=ALICE)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_job_runs_one_choice(front_jobs: jobs_pb2_grpc.JobServiceStub) -> None:
    request = chat("Hi", max_new_tokens=4)
    request.n = 2
    with pytest.raises(grpc.RpcError) as refused:
        front_jobs.SubmitJob(jobs_pb2.SubmitJobRequest(request=request), metadata=ALICE)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request.n" in (refused.value.details() or "")


@pytest.fixture
def idle_queue(loaded_model: LoadedModel) -> Iterator[jobs_pb2_grpc.JobServiceStub]:
    """A replica with no worker behind it and a queue of two: jobs stay queued."""
    prefix = f"{REDIS_TEST_PREFIX}idle-{secrets.token_hex(3)}:"
    settings = make_settings(
        redis_key_prefix=prefix, job_concurrency=0, max_queued_jobs=2, edge_secret=TEST_EDGE_SECRET
    )
    with ServerThread(settings, loaded_model) as server:
        yield from stub_for(server)
    delete_keys(settings.redis_url, prefix)


def test_a_full_queue_refuses_with_resource_exhausted(
    idle_queue: jobs_pb2_grpc.JobServiceStub,
) -> None:
    submit(idle_queue, "one", max_new_tokens=2)
    submit(idle_queue, "two", max_new_tokens=2)
    with pytest.raises(grpc.RpcError) as refused:
        submit(idle_queue, "three", max_new_tokens=2)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_cancel_a_queued_job_ends_its_watchers(idle_queue: jobs_pb2_grpc.JobServiceStub) -> None:
    job_id = submit(idle_queue, "Count to three.", max_new_tokens=4).job.job_id
    cancelled = idle_queue.CancelJob(jobs_pb2.CancelJobRequest(job_id=job_id), metadata=ALICE)
    assert cancelled.job.state == jobs_pb2.JOB_STATE_CANCELLED
    with pytest.raises(grpc.RpcError) as ended:
        list(idle_queue.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id), metadata=ALICE))
    assert ended.value.code() == grpc.StatusCode.CANCELLED
    # The cancelled job left the queue: two more fit.
    submit(idle_queue, "one", max_new_tokens=2)
    submit(idle_queue, "two", max_new_tokens=2)
