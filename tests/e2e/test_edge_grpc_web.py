"""gRPC-Web through Envoy: the real connect-web client run by Node, and the wire framing itself.

The connect-web check runs the page's own client code (clients/web/src/client.ts, bundled by
`make web`) over Node's fetch; the hand-framed checks pin what a browser sends and receives
(CORS preflight, a token, length-prefixed frames) independent of any client library.
"""

from __future__ import annotations

import json
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import grpc
import pytest

from seseragi.api.identity import SECRET_HEADER
from seseragi.edge import tokens
from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc
from tests import clients
from tests.edges import EnvoyProcess, edge_settings
from tests.helpers import as_stream, chat
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.e2e
ORIGIN = "http://localhost:3000"
PATH = "/seseragi.v1.GenerationService/GenerateStream"
SECRET = "test-edge-secret"
QUESTION = "Name three rivers."


@pytest.fixture(scope="module")
def server(loaded_model: LoadedModel) -> Iterator[ServerThread]:
    with ServerThread(make_settings(edge_secret=SECRET), loaded_model) as running:
        yield running


@pytest.fixture(scope="module")
def envoy(server: ServerThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvoyProcess]:
    tmp = tmp_path_factory.mktemp("edge-grpc-web")
    settings = edge_settings(tmp, [server.target], edge_cors_origins=ORIGIN)
    with EnvoyProcess(settings, tmp / "envoy") as running:
        yield running


def greedy_text(server: ServerThread, question: str, max_new_tokens: int) -> str:
    """The same request straight to the service (with Envoy's proof), for comparison."""
    with grpc.insecure_channel(server.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        request = chat(question, max_new_tokens=max_new_tokens)
        reply = stub.Generate(request, metadata=[(SECRET_HEADER, SECRET)], timeout=120)
    return reply.text


def connect_web(envoy: EnvoyProcess, token: str, max_tokens: int) -> list[dict[str, object]]:
    script = clients.built(clients.GRPC_WEB_SCRIPT, "web")
    args = [clients.node(), str(script), "--edge", envoy.url, "--token", token]
    done = clients.run([*args, "--prompt", QUESTION, "--max-tokens", str(max_tokens)])
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_connect_web_client_streams_deltas_as_they_are_made(
    envoy: EnvoyProcess, server: ServerThread
) -> None:
    events = connect_web(envoy, tokens.mint(envoy.settings, "node-web", 600), max_tokens=24)
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "started" and kinds[-1] == "final", events
    deltas = [e for e in events if e["kind"] == "delta"]
    assert len(deltas) >= 3
    arrivals = [float(e["at"]) for e in deltas]  # type: ignore[arg-type]
    # Decoding 24 tokens takes far longer than parsing a buffered body: spread arrivals mean
    # each delta came when it was made, not all at the end.
    assert len({round(a) for a in arrivals}) >= 3
    assert arrivals[-1] - arrivals[0] > 50
    assert "".join(str(d["text"]) for d in deltas) == greedy_text(server, QUESTION, 24)


def test_connect_web_client_without_a_valid_token_gets_unauthenticated(
    envoy: EnvoyProcess,
) -> None:
    events = connect_web(envoy, "not-a-token", max_tokens=4)
    assert events[-1]["kind"] == "error"
    assert events[-1]["code"] == 16  # connect's Code.Unauthenticated, as gRPC numbers it


def frames(body: bytes) -> Iterator[tuple[int, bytes]]:
    """(flags, payload) of each gRPC-Web frame; flag 0x80 marks the trailers frame."""
    offset = 0
    while offset < len(body):
        flags, length = struct.unpack(">BI", body[offset : offset + 5])
        yield flags, body[offset + 5 : offset + 5 + length]
        offset += 5 + length


def call(envoy: EnvoyProcess, token: str | None) -> urllib.request.Request:
    message = as_stream(chat(QUESTION, max_new_tokens=24)).SerializeToString()
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
    assert len(arrivals) > 2 and arrivals[-1] - arrivals[0] > 50e-3  # streamed, not buffered


def test_grpc_web_without_a_token_is_refused(envoy: EnvoyProcess) -> None:
    try:
        with urllib.request.urlopen(call(envoy, None), timeout=30) as reply:
            status = reply.headers.get("grpc-status")
    except urllib.error.HTTPError as error:
        status = "16" if error.code == 401 else str(error.code)
    assert status == "16"
