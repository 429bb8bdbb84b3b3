"""The chat page in a real headless Chromium, through a real Envoy to a real service.

The page is served by the same static server `seseragi stack` uses; the browser is driven by
clients/web/test/page.mjs (npm playwright-core) and reports what it saw as JSON.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from seseragi.edge import tokens
from seseragi.edge.web import PageServer, page_url
from seseragi.model.loader import LoadedModel
from seseragi.server.identity import SECRET_HEADER
from seseragi.v1 import generation_pb2 as pb
from seseragi.v1 import generation_pb2_grpc
from tests import clients
from tests.edges import EnvoyProcess, edge_settings
from tests.helpers import as_stream, chat
from tests.servers import REPO_ROOT, ServerThread, make_settings

pytestmark = pytest.mark.e2e
SECRET = "test-edge-secret"
ARTIFACTS = REPO_ROOT / "build" / "test-artifacts"
QUESTION = "Write a short poem about a mountain stream."


@pytest.fixture(scope="module")
def server(loaded_model: LoadedModel) -> Iterator[ServerThread]:
    # One generation per caller at a time, so a caller already streaming sees the overload message.
    settings = make_settings(edge_secret=SECRET, max_requests_per_caller=1)
    with ServerThread(settings, loaded_model) as running:
        yield running


@pytest.fixture(scope="module")
def page_server() -> Iterator[PageServer]:
    with PageServer("127.0.0.1", 0) as running:
        yield running


def start_envoy(
    server: ServerThread, page: PageServer, tmp: Path, **overrides: object
) -> EnvoyProcess:
    settings = edge_settings(tmp, [server.target], edge_cors_origins=page.origin, **overrides)
    return EnvoyProcess(settings, tmp / "envoy")


@pytest.fixture(scope="module")
def envoy(
    server: ServerThread, page_server: PageServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyProcess]:
    with start_envoy(server, page_server, tmp_path_factory.mktemp("web-page")) as running:
        yield running


def open_page(
    page: PageServer, envoy: EnvoyProcess, token: str, **options: object
) -> dict[str, Any]:
    """Run the browser on the page once and return what it saw."""
    driver = clients.built(clients.PAGE_DRIVER, "clients-deps")
    clients.built(REPO_ROOT / "clients" / "web" / "dist" / "app.js", "web")
    request = {"url": page_url(page.origin, envoy.url, token), "prompt": QUESTION, **options}
    done = clients.run([clients.node(), str(driver), json.dumps(request)])
    assert done.returncode == 0, done.stderr[-3000:]
    seen: dict[str, Any] = json.loads(done.stdout)
    assert not seen["consoleErrors"] or seen["state"] == "error", seen["consoleErrors"]
    return seen


def direct_text(server: ServerThread, max_new_tokens: int, temperature: float, seed: int) -> str:
    """The same generation as a plain gRPC call to the service (with Envoy's proof)."""
    request = chat(QUESTION, max_new_tokens=max_new_tokens, temperature=temperature)
    request.sampling.seed = seed
    with grpc.insecure_channel(server.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        reply: pb.GenerateResponse = stub.Generate(
            request, metadata=[(SECRET_HEADER, SECRET)], timeout=120
        )
    return reply.text


def cancelled_total(server: ServerThread) -> float:
    assert server.running is not None
    port = server.running.telemetry.metrics_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "seseragi_requests_cancelled_total"
    )


def test_page_streams_tokens_and_matches_a_grpc_call_with_the_same_seed(
    page_server: PageServer, envoy: EnvoyProcess, server: ServerThread
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    token = tokens.mint(envoy.settings, "page", 600)
    seen = open_page(
        page_server,
        envoy,
        token,
        temperature=0.8,
        seed=1234,
        maxTokens=32,
        screenshot=str(ARTIFACTS / "web-page.png"),
    )
    assert seen["state"] == "done", seen["message"]
    before_end = [u for u in seen["updates"] if u["at"] < seen["endedAt"] and u["text"]]
    lengths = [len(u["text"]) for u in before_end]
    assert len(before_end) >= 3 and lengths == sorted(lengths) and len(set(lengths)) >= 3
    assert before_end[0]["at"] < seen["endedAt"] - 50  # the first words came well before the end
    assert seen["text"] == direct_text(server, 32, 0.8, 1234)
    assert seen["ttft"].endswith(" ms") and seen["tps"] != "–" and seen["reason"] != "–"
    assert (ARTIFACTS / "web-page.png").stat().st_size > 0


def test_stop_cancels_the_call_in_the_service(
    page_server: PageServer, envoy: EnvoyProcess, server: ServerThread
) -> None:
    before = cancelled_total(server)
    token = tokens.mint(envoy.settings, "page-stop", 600)
    seen = open_page(page_server, envoy, token, maxTokens=512, stopAfterFirstDelta=True)
    assert seen["state"] == "stopped" and seen["reason"] == "–"
    deadline = time.monotonic() + 60
    while cancelled_total(server) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cancelled_total(server) == before + 1


def test_a_bad_token_reads_as_an_auth_failure(page_server: PageServer, envoy: EnvoyProcess) -> None:
    seen = open_page(page_server, envoy, "not-a-token", maxTokens=4)
    assert seen["state"] == "error" and seen["failure"] == "auth"
    assert "token" in seen["message"]


def test_a_spent_bucket_reads_as_a_rate_limit(
    page_server: PageServer, server: ServerThread, tmp_path: Path
) -> None:
    # One request a minute: the bucket stays empty for the browser's whole run once spent.
    with start_envoy(server, page_server, tmp_path, edge_requests_per_minute=1) as limited:
        token = tokens.mint(limited.settings, "page-limited", 600)
        with grpc.insecure_channel(limited.target) as channel:
            stub = generation_pb2_grpc.GenerationServiceStub(channel)
            stub.GetModelInfo(
                pb.GetModelInfoRequest(), metadata=[("authorization", f"Bearer {token}")]
            )
        seen = open_page(page_server, limited, token, maxTokens=4)
    assert seen["state"] == "error" and seen["failure"] == "rate-limit", seen["message"]
    assert "Rate limited" in seen["message"]


def test_a_caller_over_its_concurrency_cap_reads_as_overload(
    page_server: PageServer, envoy: EnvoyProcess
) -> None:
    token = tokens.mint(envoy.settings, "page-busy", 600)
    with grpc.insecure_channel(envoy.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        holding = stub.GenerateStream(
            as_stream(chat(QUESTION, max_new_tokens=512)),
            metadata=[("authorization", f"Bearer {token}")],
            timeout=300,
        )
        assert next(holding).HasField("started")  # this caller's one slot is taken
        seen = open_page(page_server, envoy, token, maxTokens=4)
        holding.cancel()
    assert seen["state"] == "error" and seen["failure"] == "overload", seen["message"]
    assert "busy" in seen["message"]
