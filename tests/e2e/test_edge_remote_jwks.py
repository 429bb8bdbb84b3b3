"""Envoy fetches the issuer's JWKS from a URI, and `seseragi envoy jwks` + `token --alg ES256`
give the containers' mounted-JWKS flow a working development pair."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from seseragi.edge import tokens
from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc
from tests.edges import EnvoyProcess, edge_settings
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.e2e
SECRET = "test-edge-secret"


def seseragi(cache: Path, *args: str) -> str:
    """The CLI as a developer runs it, with its own key directory."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "seseragi"), *args],
        env={**os.environ, "SESERAGI_CACHE_DIR": str(cache)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.strip()


class JwksServer:
    """The issuer's JWKS endpoint on loopback, counting fetches."""

    def __init__(self, jwks: Path) -> None:
        body = jwks.read_bytes()
        self.fetches = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                owner.fetches += 1
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self._server.server_address[1]}/.well-known/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, JwksServer]]:
    cache = tmp_path_factory.mktemp("issuer")
    jwks = Path(seseragi(cache, "envoy", "jwks", "--out", str(cache / "jwks.json")))
    with JwksServer(jwks) as server:
        yield cache, server


@pytest.fixture(scope="module")
def envoy(
    loaded_model: LoadedModel,
    issuer: tuple[Path, JwksServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[EnvoyProcess]:
    tmp = tmp_path_factory.mktemp("edge")
    with ServerThread(make_settings(edge_secret=SECRET), loaded_model) as server:
        settings = edge_settings(
            tmp,
            [server.target],
            edge_secret=SECRET,
            edge_dev_tokens=False,
            edge_jwks_uri=issuer[1].uri,
            edge_jwks_cache_seconds=60,
        )
        with EnvoyProcess(settings, tmp / "envoy") as running:
            yield running


def model_info(envoy: EnvoyProcess, token: str) -> pb.GetModelInfoResponse:
    with grpc.insecure_channel(envoy.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        reply: pb.GetModelInfoResponse = stub.GetModelInfo(
            pb.GetModelInfoRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=30
        )
        return reply


def test_a_token_signed_by_the_issuer_passes_with_the_fetched_jwks(
    envoy: EnvoyProcess, issuer: tuple[Path, JwksServer]
) -> None:
    token = seseragi(issuer[0], "token", "--alg", "ES256", "--sub", "alice")
    assert model_info(envoy, token).model_id
    assert issuer[1].fetches >= 1


@pytest.mark.parametrize("case", ["another-es256-key", "hs256-dev-key"])
def test_tokens_the_issuer_did_not_sign_are_refused(
    envoy: EnvoyProcess, tmp_path: Path, case: str
) -> None:
    """Another ES256 key is not in the JWKS; dev HS256 tokens are off in this variant."""
    stranger = envoy.settings.model_copy(update={"cache_dir": tmp_path})
    algorithm = "ES256" if case == "another-es256-key" else "HS256"
    token = tokens.mint(stranger, "mallory", 600, algorithm=algorithm)
    with pytest.raises(grpc.RpcError) as refused:
        model_info(envoy, token)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
