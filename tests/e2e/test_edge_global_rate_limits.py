"""Envoy's global rate-limit filter, as compose and Kubernetes render it, against an RLS server
that applies the rendered rules: the descriptors Envoy sends match them, and refusals are
RESOURCE_EXHAUSTED for the one caller over her limit only."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from seseragi.edge import ratelimit, tokens
from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc
from tests.edges import EnvoyProcess, edge_settings
from tests.rate_limit_service import RateLimitService
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.e2e
SECRET = "test-edge-secret"
PER_MINUTE = 3


@pytest.fixture(scope="module")
def edge(
    loaded_model: LoadedModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[EnvoyProcess, RateLimitService]]:
    tmp = tmp_path_factory.mktemp("edge")
    with ServerThread(make_settings(edge_secret=SECRET), loaded_model) as server:
        settings = edge_settings(
            tmp, [server.target], edge_secret=SECRET, edge_requests_per_minute=PER_MINUTE
        )
        with RateLimitService(ratelimit.service_config(settings)) as service:
            address = f"127.0.0.1:{service.port}"
            settings = settings.model_copy(update={"edge_rate_limit_service": address})
            with EnvoyProcess(settings, tmp / "envoy") as envoy:
                yield envoy, service


def call(envoy: EnvoyProcess, subject: str) -> grpc.StatusCode:
    token = tokens.mint(envoy.settings, subject, 600)
    with grpc.insecure_channel(envoy.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        try:
            stub.GetModelInfo(
                pb.GetModelInfoRequest(),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=30,
            )
        except grpc.RpcError as error:
            return error.code()  # type: ignore[no-any-return]
        return grpc.StatusCode.OK


def test_one_caller_over_her_global_limit_is_refused_and_another_is_served(
    edge: tuple[EnvoyProcess, RateLimitService],
) -> None:
    envoy, service = edge
    alice = [call(envoy, "alice") for _ in range(PER_MINUTE + 1)]
    assert alice == [grpc.StatusCode.OK] * PER_MINUTE + [grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert call(envoy, "bob") == grpc.StatusCode.OK
    asked = set(service.seen)
    assert ("seseragi", (("subject", "alice"),)) in asked
    assert ("seseragi", (("subject", "bob"),)) in asked
    assert ("seseragi", (("global", "all"),)) in asked
    # Every descriptor Envoy sent has a rule in the rendered rules file.
    rules = {(r["key"], r.get("value")) for r in service.rules["descriptors"]}
    for domain, ((key, value),) in asked:
        assert domain == ratelimit.DOMAIN and ((key, value) in rules or (key, None) in rules)


def test_health_checks_count_per_address_and_never_against_the_global_budget(
    edge: tuple[EnvoyProcess, RateLimitService],
) -> None:
    envoy, service = edge
    service.seen.clear()
    with grpc.insecure_channel(envoy.target) as channel:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert service.seen == [("seseragi", (("remote_address", "127.0.0.1"),))]
