"""Jobs across a drain: a draining replica takes no new jobs, and no job it held is lost."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from seseragi.api.identity import SUBJECT_HEADER
from seseragi.config import Settings
from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import jobs_pb2, jobs_pb2_grpc
from tests.helpers import chat
from tests.integration.test_telemetry import scrape, value
from tests.redis_servers import delete_keys
from tests.servers import REDIS_TEST_PREFIX, ServerThread, make_settings

pytestmark = pytest.mark.integration
OWNER = ((SUBJECT_HEADER, "drain"),)
TOKENS = 48  # min = max: long enough to be mid-run when the drain begins, on any machine
LIVE = (jobs_pb2.JOB_STATE_QUEUED, jobs_pb2.JOB_STATE_RUNNING)


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"{REDIS_TEST_PREFIX}drain-{secrets.token_hex(3)}:"
    yield prefix
    delete_keys(make_settings().redis_url, prefix)


def runner(prefix: str) -> Settings:
    return make_settings(
        redis_key_prefix=prefix, job_concurrency=1, job_visibility_timeout_seconds=2
    )


def submit(stub: jobs_pb2_grpc.JobServiceStub, question: str) -> str:
    request = chat(question, max_new_tokens=TOKENS, min_new_tokens=TOKENS)
    submitted = stub.SubmitJob(jobs_pb2.SubmitJobRequest(request=request), metadata=OWNER)
    job_id: str = submitted.job.job_id
    return job_id


def get(stub: jobs_pb2_grpc.JobServiceStub, job_id: str) -> jobs_pb2.Job:
    job: jobs_pb2.Job = stub.GetJob(jobs_pb2.GetJobRequest(job_id=job_id), metadata=OWNER).job
    return job


def wait_for(stub: jobs_pb2_grpc.JobServiceStub, job_id: str, *, ended: bool) -> jobs_pb2.Job:
    """Until the job ended, or (ended=False) until it is running with a token logged."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        job = get(stub, job_id)
        if ended and job.state not in LIVE:
            return job
        if not ended and job.state == jobs_pb2.JOB_STATE_RUNNING and job.generated_token_count:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never got there: {get(stub, job_id)}")


def wait_not_serving(target: str) -> None:
    request = health_pb2.HealthCheckRequest(service="seseragi.v1.GenerationService")
    deadline = time.monotonic() + 30
    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if (
                health.Check(request, timeout=5).status
                == health_pb2.HealthCheckResponse.NOT_SERVING
            ):
                return
            time.sleep(0.02)
    raise AssertionError("the draining server never said NOT_SERVING")


def test_draining_replica_refuses_new_jobs_and_finishes_the_running_one(
    loaded_model: LoadedModel, prefix: str
) -> None:
    front = make_settings(redis_key_prefix=prefix, job_concurrency=0)
    with ServerThread(front, loaded_model) as f, grpc.insecure_channel(f.target) as channel:
        jobs = jobs_pb2_grpc.JobServiceStub(channel)
        with ServerThread(runner(prefix), loaded_model) as a:
            first = submit(jobs, "Count from 1 to 100.")
            wait_for(jobs, first, ended=False)
            drained = a.start_drain(grace_seconds=120)
            wait_not_serving(a.target)
            with grpc.insecure_channel(a.target) as draining_channel:
                draining = jobs_pb2_grpc.JobServiceStub(draining_channel)
                with pytest.raises(grpc.RpcError) as refused:
                    submit(draining, "Say hello.")
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
                with pytest.raises(grpc.RpcError) as watch_refused:
                    list(draining.WatchJob(jobs_pb2.WatchJobRequest(job_id=first), metadata=OWNER))
                assert watch_refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert get(jobs, first).state == jobs_pb2.JOB_STATE_RUNNING  # mid-run at the drain
            second = submit(jobs, "Name three rivers.")
            drained.result(180)
        done = get(jobs, first)
        assert done.state == jobs_pb2.JOB_STATE_SUCCEEDED and done.attempts == 1
        assert done.generated_token_count == TOKENS
        waiting = get(jobs, second)
        assert waiting.state == jobs_pb2.JOB_STATE_QUEUED and waiting.attempts == 0
        with ServerThread(runner(prefix), loaded_model):
            later = wait_for(jobs, second, ended=True)
        assert later.state == jobs_pb2.JOB_STATE_SUCCEEDED and later.attempts == 1


def test_job_running_past_the_grace_is_reclaimed_and_logged_once(
    loaded_model: LoadedModel, prefix: str
) -> None:
    front = make_settings(redis_key_prefix=prefix, job_concurrency=0)
    with ServerThread(front, loaded_model) as f, grpc.insecure_channel(f.target) as channel:
        jobs = jobs_pb2_grpc.JobServiceStub(channel)
        with ServerThread(runner(prefix), loaded_model) as a:
            job_id = submit(jobs, "Count from 1 to 100.")
            wait_for(jobs, job_id, ended=False)
            a.start_drain(grace_seconds=0).result(120)
        left = get(jobs, job_id)
        assert left.state == jobs_pb2.JOB_STATE_RUNNING and left.attempts == 1  # not lost
        with ServerThread(runner(prefix), loaded_model) as b:
            done = wait_for(jobs, job_id, ended=True)
            metrics = scrape(b)
        assert done.state == jobs_pb2.JOB_STATE_SUCCEEDED and done.attempts == 2
        assert value(metrics, "seseragi_job_reclaims_total") == 1
        assert value(metrics, "seseragi_jobs_ended_total", state="succeeded") == 1
        assert value(metrics, "seseragi_jobs_submitted_total") == 0  # submitted through `front`
        events = [
            m.event for m in jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id), metadata=OWNER)
        ]
        counts = [e.delta.generated_token_count for e in events if e.HasField("delta")]
        assert counts == sorted(set(counts)) and counts[-1] == TOKENS
        tokens = [t for e in events if e.HasField("delta") for t in e.delta.token_ids]
        assert tokens == list(done.result.token_ids) and len(tokens) == TOKENS
