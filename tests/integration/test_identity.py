"""A subject header counts only on a call that carries the edge secret; GetModelInfo says whether
identities are enforced at all."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import grpc
import pytest

from seseragi.api.identity import SECRET_HEADER, SUBJECT_HEADER
from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc, jobs_pb2, jobs_pb2_grpc
from tests.helpers import chat
from tests.redis_servers import delete_keys
from tests.servers import (
    REDIS_TEST_PREFIX,
    TEST_EDGE_SECRET,
    ServerThread,
    as_caller,
    make_settings,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def open_and_guarded(loaded_model: LoadedModel) -> Iterator[tuple[ServerThread, ServerThread]]:
    """Two replicas sharing one Redis: one without an edge secret, one with."""
    prefix = f"{REDIS_TEST_PREFIX}identity-{secrets.token_hex(3)}:"
    plain = make_settings(redis_key_prefix=prefix, job_concurrency=0)
    guarded = make_settings(
        redis_key_prefix=prefix, job_concurrency=0, edge_secret=TEST_EDGE_SECRET
    )
    with ServerThread(plain, loaded_model) as a, ServerThread(guarded, loaded_model) as b:
        yield a, b
    delete_keys(plain.redis_url, prefix)


def test_a_forged_subject_cannot_read_another_callers_job(
    open_and_guarded: tuple[ServerThread, ServerThread],
) -> None:
    plain, guarded = open_and_guarded
    request = jobs_pb2.SubmitJobRequest(request=chat("Hi", max_new_tokens=2))
    with grpc.insecure_channel(guarded.target) as channel:
        job_id = (
            jobs_pb2_grpc.JobServiceStub(channel)
            .SubmitJob(request, metadata=as_caller("alice"))
            .job.job_id
        )
    with grpc.insecure_channel(plain.target) as channel:
        forged = ((SUBJECT_HEADER, "alice"),)
        with pytest.raises(grpc.RpcError) as refused:
            jobs_pb2_grpc.JobServiceStub(channel).GetJob(
                jobs_pb2.GetJobRequest(job_id=job_id), metadata=forged
            )
    assert refused.value.code() is grpc.StatusCode.NOT_FOUND  # the caller is "anonymous"


def test_a_subject_without_the_secret_is_refused_by_a_guarded_replica(
    open_and_guarded: tuple[ServerThread, ServerThread],
) -> None:
    _, guarded = open_and_guarded
    wrong = ((SUBJECT_HEADER, "alice"), (SECRET_HEADER, "guess"))
    with grpc.insecure_channel(guarded.target) as channel, pytest.raises(grpc.RpcError) as refused:
        jobs_pb2_grpc.JobServiceStub(channel).ListJobs(jobs_pb2.ListJobsRequest(), metadata=wrong)
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_model_info_says_whether_identity_is_enforced(
    open_and_guarded: tuple[ServerThread, ServerThread],
) -> None:
    plain, guarded = open_and_guarded
    seen = []
    for server, metadata in ((plain, ()), (guarded, as_caller("alice"))):
        with grpc.insecure_channel(server.target) as channel:
            stub = generation_pb2_grpc.GenerationServiceStub(channel)
            info = stub.GetModelInfo(pb.GetModelInfoRequest(), metadata=metadata)
            seen.append(info.identity_enforced)
    assert seen == [False, True]
