"""Unauthenticated traffic never spends an authenticated caller's budget at a real Envoy: a flood
of token-less health checks meets its own per-address bucket, and token-less calls never reach
a replica."""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from seseragi.edge import tokens
from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc
from tests.edges import EnvoyProcess, edge_settings
from tests.helpers import chat
from tests.servers import TEST_EDGE_SECRET, ServerThread, make_settings

pytestmark = pytest.mark.e2e
GLOBAL_PER_MINUTE = 20  # the flood alone would empty this many times over
HEALTH_PER_MINUTE = 30
FLOOD_S = 4.0
HEADERS_TIMEOUT_S, REQUEST_TIMEOUT_S = 1.0, 2.0


@pytest.fixture(scope="module")
def envoy(
    loaded_model: LoadedModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyProcess]:
    tmp = tmp_path_factory.mktemp("edge-fairness")
    with ServerThread(make_settings(edge_secret=TEST_EDGE_SECRET), loaded_model) as server:
        settings = edge_settings(
            tmp,
            [server.target],
            edge_secret=TEST_EDGE_SECRET,
            edge_global_requests_per_minute=GLOBAL_PER_MINUTE,
            edge_health_requests_per_minute=HEALTH_PER_MINUTE,
            edge_request_headers_timeout_seconds=HEADERS_TIMEOUT_S,
            edge_request_timeout_seconds=REQUEST_TIMEOUT_S,
        )
        with EnvoyProcess(settings, tmp / "envoy") as running:
            yield running


def flood_health(envoy: EnvoyProcess) -> Counter[grpc.StatusCode]:
    codes: Counter[grpc.StatusCode] = Counter()
    deadline = time.monotonic() + FLOOD_S
    with grpc.insecure_channel(envoy.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                codes[grpc.StatusCode.OK] += 1
            except grpc.RpcError as error:
                codes[error.code()] += 1
    return codes


def test_a_health_check_flood_refuses_no_authenticated_call(envoy: EnvoyProcess) -> None:
    token = tokens.mint(envoy.settings, "alice", 600)
    metadata = (("authorization", f"Bearer {token}"),)
    with ThreadPoolExecutor(4) as pool, grpc.insecure_channel(envoy.target) as channel:
        floods = [pool.submit(flood_health, envoy) for _ in range(3)]
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        time.sleep(0.5)  # the flood is under way
        generating = pool.submit(
            stub.Generate, chat("Say hi.", max_new_tokens=4), metadata=metadata, timeout=120
        )
        answered = []
        while not all(f.done() for f in floods):
            answered.append(stub.GetModelInfo(pb.GetModelInfoRequest(), metadata=metadata))
            time.sleep(0.2)
        generated = generating.result()
        codes = sum((f.result() for f in floods), Counter[grpc.StatusCode]())
    assert generated.usage.output_tokens > 0 and len(answered) >= 5
    # The flood met its own bucket: far more checks than the global budget, most refused.
    assert sum(codes.values()) > 5 * GLOBAL_PER_MINUTE
    assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert codes[grpc.StatusCode.OK] <= HEALTH_PER_MINUTE + 5


def test_token_less_calls_cost_the_replicas_nothing(envoy: EnvoyProcess) -> None:
    before = envoy.stat("cluster.seseragi.upstream_rq_total")
    with grpc.insecure_channel(envoy.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        for _ in range(50):
            with pytest.raises(grpc.RpcError) as refused:
                stub.Generate(chat("Say hi.", max_new_tokens=4), timeout=10)
            assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert envoy.stat("cluster.seseragi.upstream_rq_total") == before


def silent_for(sock: socket.socket, seconds: float) -> bytes:
    """What the server sends (b"" once it closes) within `seconds` of silence from us."""
    sock.settimeout(seconds)
    try:
        return sock.recv(4096) or b"closed"
    except TimeoutError:
        return b""


@pytest.mark.parametrize(
    ("sent", "bound_s"),
    [
        (b"POST /v1/generate HTTP/1.1\r\nhost: x\r\n", HEADERS_TIMEOUT_S),  # headers never end
        (
            b"POST /v1/generate HTTP/1.1\r\nhost: x\r\nauthorization: Bearer TOKEN\r\n"
            b"content-length: 100\r\n\r\n{",
            REQUEST_TIMEOUT_S,  # the body never ends
        ),
    ],
)
def test_a_slow_client_is_cut_off_within_its_bound(
    envoy: EnvoyProcess, sent: bytes, bound_s: float
) -> None:
    with socket.create_connection(("127.0.0.1", envoy.settings.edge_port), timeout=5) as sock:
        token = tokens.mint(envoy.settings, "slow", 600).encode()
        sock.sendall(sent.replace(b"TOKEN", token))
        started = time.monotonic()
        answer = silent_for(sock, bound_s + 5)
    waited = time.monotonic() - started
    assert answer, "Envoy kept waiting for the slow client"
    assert bound_s - 0.5 <= waited <= bound_s + 3
    assert answer == b"closed" or answer.startswith(b"HTTP/1.1 408")
