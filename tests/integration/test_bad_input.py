"""Bad input is INVALID_ARGUMENT naming its field, never INTERNAL or UNKNOWN."""

from __future__ import annotations

import grpc
import pytest

from seseragi_contract.v1 import jobs_pb2, jobs_pb2_grpc
from tests.servers import ServerThread

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("token", ["abc", "-1", "1e3", "²", "٣", " 1", "9" * 40])
def test_a_malformed_page_token_is_invalid_argument(server: ServerThread, token: str) -> None:
    with grpc.insecure_channel(server.target) as channel:
        jobs = jobs_pb2_grpc.JobServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            jobs.ListJobs(jobs_pb2.ListJobsRequest(page_token=token))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in (refused.value.details() or "")


def test_a_page_token_it_handed_out_is_accepted(server: ServerThread) -> None:
    with grpc.insecure_channel(server.target) as channel:
        jobs = jobs_pb2_grpc.JobServiceStub(channel)
        assert jobs.ListJobs(jobs_pb2.ListJobsRequest(page_token="0", page_size=1)) is not None
