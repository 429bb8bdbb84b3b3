"""Envoy's circuit breaker: calls beyond what the replicas take at once are refused at the edge
RESOURCE_EXHAUSTED (REST: 429) with a reason, while health checks still pass."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from seseragi.edge import tokens
from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import generation_pb2_grpc
from tests.edges import EnvoyProcess, edge_settings
from tests.helpers import CAPITAL_QUESTION, as_stream, chat
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def envoy(
    loaded_model: LoadedModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyProcess]:
    """A replica with one running and one queued place; Envoy rendered for one place and one
    call of headroom, so two long streams fill its breaker (max_requests 2)."""
    tmp = tmp_path_factory.mktemp("edge-admission")
    replica = make_settings(
        edge_secret="test-edge-secret", max_running_requests=1, max_queued_requests=1
    )
    with ServerThread(replica, loaded_model) as server:
        settings = edge_settings(
            tmp, [server.target], max_running_requests=1, max_queued_requests=0, rpc_headroom=1
        )
        with EnvoyProcess(settings, tmp / "envoy") as running:
            yield running


def test_calls_beyond_the_breaker_are_refused_at_the_edge_with_a_reason(
    envoy: EnvoyProcess,
) -> None:
    metadata = (("authorization", f"Bearer {tokens.mint(envoy.settings, 'alice', 600)}"),)
    request = chat("Write a very long story.", max_new_tokens=1000, min_new_tokens=1000)
    with envoy.channel() as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        streams = [stub.GenerateStream(as_stream(request), metadata=metadata) for _ in range(2)]
        try:
            for stream in streams:
                next(iter(stream))  # started: both calls hold a place of the breaker
            before = envoy.stat("cluster.seseragi.upstream_rq_total")
            with pytest.raises(grpc.RpcError) as refused:
                stub.Generate(chat(CAPITAL_QUESTION), metadata=metadata, timeout=30)
            error = refused.value
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
            status = rpc_status.from_call(error)  # type: ignore[arg-type]
            assert status is not None and status.message == "every replica is full; retry in 1s"
            info = error_details_pb2.ErrorInfo()
            assert any(d.Unpack(info) for d in status.details) and info.reason == "EDGE_FULL"
            assert any(d.type_url.endswith("google.rpc.RetryInfo") for d in status.details)
            assert envoy.stat("cluster.seseragi.upstream_rq_total") == before  # no replica saw it
            assert envoy.stat("cluster.seseragi.upstream_rq_active_overflow") == 1

            rest = urllib.request.Request(
                f"{envoy.url}/v1/generate",
                data=json.dumps({"prompt": "Hi"}).encode(),
                headers={"authorization": metadata[0][1], "content-type": "application/json"},
            )
            with pytest.raises(urllib.error.HTTPError) as rest_refused:
                urllib.request.urlopen(rest, timeout=30)
            assert rest_refused.value.code == 429

            # Health checks have their own breaker: the probe still answers, and Envoy still
            # counts the replica healthy.
            health = health_pb2_grpc.HealthStub(channel)
            probe = health_pb2.HealthCheckRequest(service="seseragi.v1.GenerationService")
            assert health.Check(probe, timeout=5).status == health_pb2.HealthCheckResponse.SERVING
            assert envoy.stat("cluster.seseragi.membership_healthy") == 1
        finally:
            for stream in streams:
                stream.cancel()
