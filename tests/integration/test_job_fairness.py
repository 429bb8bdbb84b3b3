"""One caller cannot fill the job queue or hold every watch: per-subject caps, real Redis."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import jobs_pb2, jobs_pb2_grpc
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
ALICE, BOB = as_caller("alice"), as_caller("bob")
PER_CALLER = 2


@pytest.fixture(scope="module")
def queue(loaded_model: LoadedModel) -> Iterator[jobs_pb2_grpc.JobServiceStub]:
    """No worker runs jobs here, so submitted jobs stay queued."""
    prefix = f"{REDIS_TEST_PREFIX}fair-{secrets.token_hex(3)}:"
    settings = make_settings(
        redis_key_prefix=prefix,
        job_concurrency=0,
        edge_secret=TEST_EDGE_SECRET,
        max_jobs_per_caller=PER_CALLER,
        max_watches_per_caller=1,
    )
    with ServerThread(settings, loaded_model) as server, grpc.insecure_channel(server.target) as ch:
        yield jobs_pb2_grpc.JobServiceStub(ch)
    delete_keys(settings.redis_url, prefix)


def submit(stub: jobs_pb2_grpc.JobServiceStub, who: object) -> str:
    request = jobs_pb2.SubmitJobRequest(request=chat("Hi", max_new_tokens=2))
    job_id: str = stub.SubmitJob(request, metadata=who).job.job_id
    return job_id


def reason(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.type_url.endswith("ErrorInfo"):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


def test_a_caller_at_her_job_cap_is_refused_and_others_are_not(
    queue: jobs_pb2_grpc.JobServiceStub,
) -> None:
    first = [submit(queue, ALICE) for _ in range(PER_CALLER)]
    with pytest.raises(grpc.RpcError) as refused:
        submit(queue, ALICE)
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason(refused.value) == "CALLER_JOB_LIMIT"
    submit(queue, BOB)
    queue.CancelJob(jobs_pb2.CancelJobRequest(job_id=first[0]), metadata=ALICE)
    submit(queue, ALICE)  # an ended job no longer counts


def test_a_caller_may_hold_only_so_many_watches(queue: jobs_pb2_grpc.JobServiceStub) -> None:
    job_id = submit(queue, BOB)
    watch = jobs_pb2.WatchJobRequest(job_id=job_id)
    held = queue.WatchJob(watch, metadata=BOB)
    assert next(iter(held)).event.WhichOneof("event") == "started"
    with pytest.raises(grpc.RpcError) as refused:
        next(iter(queue.WatchJob(watch, metadata=BOB)))
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason(refused.value) == "WATCH_LIMIT"
    held.cancel()
    codes = []
    for _ in range(100):  # the slot frees once the server sees the cancellation
        again = queue.WatchJob(watch, metadata=BOB)
        try:
            first = next(iter(again)).event.WhichOneof("event")
        except grpc.RpcError as error:
            codes.append(error.code())
            time.sleep(0.05)
            continue
        again.cancel()
        assert first == "started" and set(codes) <= {grpc.StatusCode.RESOURCE_EXHAUSTED}
        return
    pytest.fail("the cancelled watch never freed its slot")
