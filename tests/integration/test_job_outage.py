"""A job running while Redis freezes for a moment rides it out: it ends SUCCEEDED in its first
attempt, with the text it would have had (the fault suite's Redis-freeze row, in miniature)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from seseragi.api.identity import SUBJECT_HEADER
from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import generation_pb2_grpc, jobs_pb2, jobs_pb2_grpc
from tests.helpers import chat
from tests.integration.test_job_drain import LIVE
from tests.redis_servers import PrivateRedis
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.integration
OWNER = ((SUBJECT_HEADER, "outage"),)
TOKENS = 48  # min = max: still running when Redis freezes, on any machine
FREEZE_S = 2.0


@pytest.fixture
def redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.thaw()
        server.kill()


def job(stub: jobs_pb2_grpc.JobServiceStub, job_id: str) -> jobs_pb2.Job:
    found: jobs_pb2.Job = stub.GetJob(jobs_pb2.GetJobRequest(job_id=job_id), metadata=OWNER).job
    return found


def test_a_job_running_through_a_short_redis_freeze_succeeds(
    loaded_model: LoadedModel, redis: PrivateRedis
) -> None:
    settings = make_settings(
        redis_url=redis.url, job_concurrency=1, job_visibility_timeout_seconds=5
    )
    request = chat("Count slowly from one to fifty.", max_new_tokens=TOKENS, min_new_tokens=TOKENS)
    with (
        ServerThread(settings, loaded_model) as server,
        grpc.insecure_channel(server.target) as channel,
    ):
        jobs = jobs_pb2_grpc.JobServiceStub(channel)
        alone = generation_pb2_grpc.GenerationServiceStub(channel).Generate(request)
        job_id = jobs.SubmitJob(
            jobs_pb2.SubmitJobRequest(request=request), metadata=OWNER
        ).job.job_id
        deadline = time.monotonic() + 120
        while job(jobs, job_id).generated_token_count == 0:
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.05)
        redis.freeze()
        time.sleep(FREEZE_S)
        redis.thaw()
        deadline = time.monotonic() + 240
        while (ended := job(jobs, job_id)).state in LIVE:
            assert time.monotonic() < deadline, f"the job never ended: {ended}"
            time.sleep(0.2)
    assert ended.state == jobs_pb2.JOB_STATE_SUCCEEDED, ended
    assert ended.attempts == 1, "a short outage must not cost the job a rerun"
    assert list(ended.result.token_ids) == list(alone.token_ids)
    assert ended.result.text == alone.text
