"""A call whose deadline passes ends DEADLINE_EXCEEDED through Envoy exactly as it does directly,
whenever in the call the deadline falls (queued, prefilling, or generating)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from seseragi.edge import tokens
from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import generation_pb2_grpc
from tests.edges import EnvoyProcess, edge_settings
from tests.helpers import as_stream, chat
from tests.servers import TEST_EDGE_SECRET, ServerThread, make_settings

pytestmark = pytest.mark.e2e
DEADLINES_S = [0.05, 0.3, 0.8, 1.5, 2.5]


@pytest.fixture(scope="module")
def edge(
    loaded_model: LoadedModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerThread, EnvoyProcess]]:
    tmp = tmp_path_factory.mktemp("edge-deadlines")
    with ServerThread(make_settings(edge_secret=TEST_EDGE_SECRET), loaded_model) as server:
        settings = edge_settings(tmp, [server.target], edge_secret=TEST_EDGE_SECRET)
        with EnvoyProcess(settings, tmp / "envoy") as envoy:
            yield server, envoy


def codes(target: str, metadata: tuple[tuple[str, str], ...]) -> list[grpc.StatusCode]:
    long = chat("Write a long story.", max_new_tokens=400, min_new_tokens=400)
    found = []
    with grpc.insecure_channel(target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        for timeout in DEADLINES_S:
            for streaming in (False, True):
                try:
                    if streaming:
                        list(
                            stub.GenerateStream(as_stream(long), metadata=metadata, timeout=timeout)
                        )
                    else:
                        stub.Generate(long, metadata=metadata, timeout=timeout)
                    found.append(grpc.StatusCode.OK)
                except grpc.RpcError as error:
                    found.append(error.code())
    return found


def test_a_passed_deadline_is_deadline_exceeded_through_envoy_as_directly(
    edge: tuple[ServerThread, EnvoyProcess],
) -> None:
    server, envoy = edge
    token = tokens.mint(envoy.settings, "hurried", 600)
    direct = codes(server.target, (("x-seseragi-edge-secret", TEST_EDGE_SECRET),))
    through = codes(envoy.target, (("authorization", f"Bearer {token}"),))
    expected = [grpc.StatusCode.DEADLINE_EXCEEDED] * 2 * len(DEADLINES_S)
    assert (direct, through) == (expected, expected), [direct, through]
