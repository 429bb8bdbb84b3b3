"""The chat page in a real headless Chromium, through a real Envoy to a real service.

The page is served by the same static server `seseragi stack` uses; the browser is driven by
clients/web/test/page.mjs (npm playwright-core) and reports what it saw as JSON.
"""

from __future__ import annotations

import base64
import json
import struct
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from seseragi.api.identity import SECRET_HEADER
from seseragi.edge import tokens
from seseragi.edge.web import PageServer, page_url
from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc
from tests import clients
from tests.edges import EnvoyProcess, edge_settings
from tests.helpers import as_stream, chat
from tests.servers import REPO_ROOT, ServerThread, make_settings

pytestmark = pytest.mark.e2e
SECRET = "test-edge-secret"
ARTIFACTS = REPO_ROOT / "build" / "test-artifacts"
QUESTION = "Write a short poem about a mountain stream."
# SmolLM2-135M, greedy: asked alone it invents a word; after the first turn it repeats "banana".
TOLD = "The secret word is banana."
ASKED = "What is the secret word?"
Step = dict[str, object]
Seen = dict[str, Any]


@pytest.fixture(scope="module")
def server(loaded_model: LoadedModel) -> Iterator[ServerThread]:
    # One generation per caller at a time, so a caller already streaming sees the overload message.
    settings = make_settings(edge_secret=SECRET, max_requests_per_caller=1)
    with ServerThread(settings, loaded_model) as running:
        yield running


@pytest.fixture(scope="module")
def page_server() -> Iterator[PageServer]:
    with PageServer("127.0.0.1", 0, REPO_ROOT / "clients" / "web" / "dist") as running:
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
    page: PageServer, envoy: EnvoyProcess, token: str, steps: list[Step], **options: object
) -> Seen:
    """Run the browser through `steps` on one page and return what it saw."""
    driver = clients.built(clients.PAGE_DRIVER, "clients-deps")
    clients.built(REPO_ROOT / "clients" / "web" / "dist" / "app.js", "web")
    request = {"url": page_url(page.origin, envoy.url, token), "steps": steps, **options}
    done = clients.run([clients.node(), str(driver), json.dumps(request)])
    assert done.returncode == 0, done.stderr[-3000:]
    seen: Seen = json.loads(done.stdout)
    ended = seen["steps"][-1]["state"]
    assert not seen["consoleErrors"] or ended == "error", seen["consoleErrors"]
    return seen


def sent_requests(seen: Seen) -> list[pb.GenerateStreamRequest]:
    """The GenerateStream requests the page sent, decoded from their gRPC-Web frames."""
    decoded = []
    for body in seen["requests"]:
        frame = base64.b64decode(body)
        flags, length = struct.unpack(">BI", frame[:5])
        assert flags == 0 and len(frame) == 5 + length  # one uncompressed message
        decoded.append(pb.GenerateStreamRequest.FromString(frame[5:]))
    return decoded


def turns(request: pb.GenerateStreamRequest) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in request.messages]


def direct_text(
    server: ServerThread,
    messages: list[tuple[str, str]],
    max_new_tokens: int,
    temperature: float = 0.0,
    seed: int | None = None,
) -> str:
    """The same generation as a plain gRPC call to the service (with Envoy's proof)."""
    request = pb.GenerateRequest(
        messages=[pb.ChatMessage(role=role, content=text) for role, text in messages],
        sampling=pb.SamplingParams(temperature=temperature, seed=seed),
        stopping=pb.StoppingCriteria(max_new_tokens=max_new_tokens),
    )
    with grpc.insecure_channel(server.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        reply: pb.GenerateResponse = stub.Generate(
            request, metadata=[(SECRET_HEADER, SECRET)], timeout=120
        )
    return reply.text


def model_info(server: ServerThread) -> pb.GetModelInfoResponse:
    with grpc.insecure_channel(server.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        info: pb.GetModelInfoResponse = stub.GetModelInfo(
            pb.GetModelInfoRequest(), metadata=[(SECRET_HEADER, SECRET)], timeout=30
        )
    return info


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
    token = tokens.mint(envoy.settings, "page", 600)
    options = {"temperature": 0.8, "seed": 1234, "maxTokens": 32}
    seen = open_page(page_server, envoy, token, [{"send": QUESTION}], **options)
    step = seen["steps"][0]
    assert step["state"] == "done", step["message"]
    before_end = [u for u in step["updates"] if u["at"] < step["endedAt"] and u["text"]]
    lengths = [len(u["text"]) for u in before_end]
    assert len(before_end) >= 3 and lengths == sorted(lengths) and len(set(lengths)) >= 3
    assert before_end[0]["at"] < step["endedAt"] - 50  # the first words came well before the end
    answer = step["transcript"][-1]
    assert answer["role"] == "assistant"
    assert answer["text"] == direct_text(server, [("user", QUESTION)], 32, 0.8, 1234)
    assert step["ttft"].endswith(" ms") and step["tps"] != "–" and step["reason"] != "–"


def test_a_second_turn_is_answered_from_the_first(
    page_server: PageServer, envoy: EnvoyProcess, server: ServerThread
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    token = tokens.mint(envoy.settings, "page-chat", 600)
    steps: list[Step] = [{"send": TOLD}, {"send": ASKED, "enter": True}]  # Enter sends too
    shot = ARTIFACTS / "web-page.png"
    seen = open_page(page_server, envoy, token, steps, maxTokens=24, screenshot=str(shot))
    first, second = seen["steps"]
    assert first["state"] == "done" and second["state"] == "done", second["message"]
    told = first["transcript"][-1]["text"]
    answer = second["transcript"][-1]["text"]
    assert [(t["role"], t["text"]) for t in second["transcript"]] == [
        ("user", TOLD),
        ("assistant", told),
        ("user", ASKED),
        ("assistant", answer),
    ]
    # The second request carried the whole conversation, and its answer depends on it.
    requests = sent_requests(seen)
    assert [turns(r) for r in requests] == [
        [("user", TOLD)],
        [("user", TOLD), ("assistant", told), ("user", ASKED)],
    ]
    assert answer == direct_text(server, turns(requests[1]), 24)
    assert "banana" in answer.lower()
    assert "banana" not in direct_text(server, [("user", ASKED)], 24).lower()
    # The model's id and limits come from GetModelInfo; timings are live.
    info = model_info(server)
    assert info.model_id in seen["model"] and str(info.context_length) in seen["model"]
    assert seen["maxTokensLimit"] == str(info.limits.max_new_tokens)
    assert second["ttft"].endswith(" ms") and second["tps"] != "–"
    assert shot.stat().st_size > 0


def test_regenerate_replaces_the_last_answer(
    page_server: PageServer, envoy: EnvoyProcess, server: ServerThread
) -> None:
    token = tokens.mint(envoy.settings, "page-regenerate", 600)
    system = "You are a poet."
    steps: list[Step] = [{"send": QUESTION, "seed": 1}, {"regenerate": True, "seed": 2}]
    options = {"temperature": 1.0, "maxTokens": 16, "system": system}
    seen = open_page(page_server, envoy, token, steps, **options)
    first, again = seen["steps"]
    assert again["state"] == "done", again["message"]
    conversation = [("system", system), ("user", QUESTION)]
    assert [turns(r) for r in sent_requests(seen)] == [conversation, conversation]
    assert sent_requests(seen)[1].cache == pb.CACHE_POLICY_REFRESH  # a fresh answer, not the cache
    old = first["transcript"][-1]["text"]
    new = again["transcript"][-1]["text"]
    assert [t["role"] for t in again["transcript"]] == ["user", "assistant"]  # replaced, not added
    assert new == direct_text(server, conversation, 16, 1.0, seed=2)
    assert old == direct_text(server, conversation, 16, 1.0, seed=1) != new


def test_stop_cancels_the_call_in_the_service(
    page_server: PageServer, envoy: EnvoyProcess, server: ServerThread
) -> None:
    before = cancelled_total(server)
    token = tokens.mint(envoy.settings, "page-stop", 600)
    steps: list[Step] = [{"send": QUESTION, "stopAfterFirstDelta": True}]
    seen = open_page(page_server, envoy, token, steps, maxTokens=512)
    step = seen["steps"][0]
    assert step["state"] == "stopped" and step["reason"] == "–"
    kept = step["transcript"][-1]  # the partial answer stays, marked, and may be re-asked
    assert kept["role"] == "assistant" and kept["text"] and kept["note"] == "stopped"
    assert step["regenerateEnabled"]
    deadline = time.monotonic() + 60
    while cancelled_total(server) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cancelled_total(server) == before + 1


def test_a_bad_token_reads_as_an_auth_failure(page_server: PageServer, envoy: EnvoyProcess) -> None:
    seen = open_page(page_server, envoy, "not-a-token", [{"send": QUESTION}], maxTokens=4)
    step = seen["steps"][0]
    assert step["state"] == "error" and step["failure"] == "auth"
    assert "token" in step["message"] and "token" in seen["model"]
    assert [t["role"] for t in step["transcript"]] == ["user"]  # kept, to be re-asked


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
        seen = open_page(page_server, limited, token, [{"send": QUESTION}], maxTokens=4)
    step = seen["steps"][0]
    assert step["state"] == "error" and step["failure"] == "rate-limit", step["message"]
    assert "Rate limited" in step["message"]


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
        seen = open_page(page_server, envoy, token, [{"send": QUESTION}], maxTokens=4)
        holding.cancel()
    step = seen["steps"][0]
    assert step["state"] == "error" and step["failure"] == "overload", step["message"]
    assert "busy" in step["message"]
