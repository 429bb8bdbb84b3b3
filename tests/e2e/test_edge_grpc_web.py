"""gRPC-Web through Envoy, framed by hand over HTTP/1.1 as a browser would send it.

Not the npm `@connectrpc/connect-web` client the issue names (not installed here yet); this
checks the same wire protocol: CORS preflight, a token, and length-prefixed frames streaming back.
"""

from __future__ import annotations

import struct
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from seseragi.edge import tokens
from seseragi.model.loader import LoadedModel
from seseragi.v1 import generation_pb2 as pb
from tests.edges import EnvoyProcess, edge_settings
from tests.helpers import as_stream, chat
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.e2e
ORIGIN = "http://localhost:3000"
PATH = "/seseragi.v1.GenerationService/GenerateStream"


@pytest.fixture(scope="module")
def envoy(
    loaded_model: LoadedModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyProcess]:
    tmp = tmp_path_factory.mktemp("edge-grpc-web")
    with ServerThread(make_settings(edge_secret="test-edge-secret"), loaded_model) as server:
        settings = edge_settings(tmp, [server.target], edge_cors_origins=ORIGIN)
        with EnvoyProcess(settings, tmp / "envoy") as running:
            yield running


def frames(body: bytes) -> Iterator[tuple[int, bytes]]:
    """(flags, payload) of each gRPC-Web frame; flag 0x80 marks the trailers frame."""
    offset = 0
    while offset < len(body):
        flags, length = struct.unpack(">BI", body[offset : offset + 5])
        yield flags, body[offset + 5 : offset + 5 + length]
        offset += 5 + length


def call(envoy: EnvoyProcess, token: str | None) -> urllib.request.Request:
    message = as_stream(chat("Name three rivers.", max_new_tokens=24)).SerializeToString()
    headers = {
        "content-type": "application/grpc-web+proto",
        "x-grpc-web": "1",
        "origin": ORIGIN,
    }
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    data = struct.pack(">BI", 0, len(message)) + message
    return urllib.request.Request(envoy.url + PATH, data=data, headers=headers, method="POST")


def test_cors_preflight_allows_the_configured_origin(envoy: EnvoyProcess) -> None:
    preflight = urllib.request.Request(
        envoy.url + PATH,
        method="OPTIONS",
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization,content-type,x-grpc-web",
        },
    )
    with urllib.request.urlopen(preflight, timeout=30) as reply:
        assert reply.headers["access-control-allow-origin"] == ORIGIN
        assert "authorization" in reply.headers["access-control-allow-headers"]


def test_grpc_web_stream_arrives_frame_by_frame(envoy: EnvoyProcess) -> None:
    token = tokens.mint(envoy.settings, "browser", 600)
    arrivals: list[float] = []
    body = b""
    with urllib.request.urlopen(call(envoy, token), timeout=120) as reply:
        assert reply.headers["access-control-allow-origin"] == ORIGIN
        while chunk := reply.read1(65536):
            arrivals.append(time.monotonic())
            body += chunk
    parsed = list(frames(body))
    events = [pb.GenerateStreamResponse.FromString(p) for f, p in parsed if not f & 0x80]
    trailers = [p.decode() for f, p in parsed if f & 0x80]
    assert events[0].HasField("started") and events[-1].HasField("final")
    assert sum(e.HasField("delta") for e in events) >= 3
    assert "grpc-status:0" in trailers[0].replace(" ", "")
    assert len(arrivals) > 2 and arrivals[-1] - arrivals[0] > 0.05  # streamed, not buffered


def test_grpc_web_without_a_token_is_refused(envoy: EnvoyProcess) -> None:
    try:
        with urllib.request.urlopen(call(envoy, None), timeout=30) as reply:
            status = reply.headers.get("grpc-status")
    except urllib.error.HTTPError as error:
        status = "16" if error.code == 401 else str(error.code)
    assert status == "16"
