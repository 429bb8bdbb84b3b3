"""Per-subject token buckets at a real Envoy: one caller's empty bucket never limits another."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import grpc
import pytest

from seseragi.edge import tokens
from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc
from tests.edges import EnvoyProcess, edge_settings
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.e2e
PER_MINUTE = 6  # a burst of 6, then one more every 10 s


@pytest.fixture(scope="module")
def envoy(
    loaded_model: LoadedModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyProcess]:
    tmp = tmp_path_factory.mktemp("edge-limits")
    with ServerThread(make_settings(edge_secret="test-edge-secret"), loaded_model) as server:
        settings = edge_settings(tmp, [server.target], edge_requests_per_minute=PER_MINUTE)
        with EnvoyProcess(settings, tmp / "envoy") as running:
            yield running


def model_info(stub: generation_pb2_grpc.GenerationServiceStub, token: str) -> None:
    stub.GetModelInfo(
        pb.GetModelInfoRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=30
    )


def test_alice_is_limited_while_bob_is_served_then_alice_refills(envoy: EnvoyProcess) -> None:
    alice = tokens.mint(envoy.settings, "alice", 600)
    bob = tokens.mint(envoy.settings, "bob", 600)
    with grpc.insecure_channel(envoy.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        for _ in range(PER_MINUTE):
            model_info(stub, alice)
        with pytest.raises(grpc.RpcError) as refused:
            model_info(stub, alice)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # A refused gRPC call is trailers-only: the rate-limit headers arrive as its metadata.
        metadata = dict(refused.value.trailing_metadata() or ())  # type: ignore[attr-defined]
        assert int(metadata["x-ratelimit-limit"]) == PER_MINUTE
        assert metadata["x-ratelimit-remaining"] == "0"
        model_info(stub, bob)

        with pytest.raises(urllib.error.HTTPError) as rest_refused:
            urllib.request.urlopen(
                urllib.request.Request(
                    f"{envoy.url}/v1/model", headers={"authorization": f"Bearer {alice}"}
                ),
                timeout=30,
            )
        assert rest_refused.value.code == 429
        assert rest_refused.value.headers["x-ratelimit-limit"]

        deadline = time.monotonic() + 30  # one token comes back every 10 s
        codes = []
        while time.monotonic() < deadline:
            try:
                model_info(stub, alice)
                break
            except grpc.RpcError as error:
                codes.append(error.code())
                time.sleep(1)
        else:
            pytest.fail("alice's bucket never refilled")
        assert set(codes) <= {grpc.StatusCode.RESOURCE_EXHAUSTED}
