"""Per-route metrics of the OpenAI HTTP API, scraped from a real replica after known calls."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from seseragi.api.identity import SECRET_HEADER
from seseragi.model.loader import LoadedModel
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.integration
DURATION = "http_server_request_duration_seconds"
ACTIVE = "http_server_active_requests"
CHAT = "/v1/chat/completions"
SECRET = "test-edge-secret"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def replica(loaded_model: LoadedModel) -> Iterator[ServerThread]:
    """A replica of this module's own: its counters start at zero and see only the calls below."""
    with ServerThread(make_settings(edge_secret=SECRET), loaded_model) as server:
        yield server


def scrape(server: ServerThread) -> Samples:
    assert server.running is not None
    port = server.running.telemetry.metrics_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def requests(samples: Samples, method: str, route: str, status: int) -> float:
    labels = {"http_request_method": method, "http_route": route}
    key = tuple(sorted({**labels, "http_response_status_code": str(status)}.items()))
    return samples.get((f"{DURATION}_count", key), 0.0)


def seconds(samples: Samples, method: str, route: str, status: int) -> float:
    labels = {"http_request_method": method, "http_route": route}
    key = tuple(sorted({**labels, "http_response_status_code": str(status)}.items()))
    return samples.get((f"{DURATION}_sum", key), 0.0)


def active(samples: Samples, method: str, route: str) -> float:
    key = tuple(sorted({"http_request_method": method, "http_route": route}.items()))
    return samples[(ACTIVE, key)]


def test_each_route_is_counted_by_method_template_and_status(replica: ServerThread) -> None:
    base = replica.http_url.removesuffix("/v1")
    model = replica.settings.model
    with httpx.Client(base_url=base, timeout=120) as stranger:
        assert stranger.get("/v1/models").status_code == 401  # not through the edge
    with httpx.Client(base_url=base, headers={SECRET_HEADER: SECRET}, timeout=120) as http:
        assert http.get("/v1/models").status_code == 200
        assert http.get("/v1/models").status_code == 200
        assert http.get(f"/v1/models/{model}").status_code == 200
        assert http.get("/v1/models/gpt-4o").status_code == 404
        assert http.get("/v1/nowhere").status_code == 404
        assert http.get(CHAT).status_code == 405
        chat = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
        assert http.post(CHAT, json=chat).status_code == 200
        assert http.post(CHAT, json={**chat, "temperature": "hot"}).status_code == 400
    samples = scrape(replica)
    assert requests(samples, "GET", "/v1/models", 200) == 2
    assert requests(samples, "GET", "/v1/models", 401) == 1  # refused before routing, still named
    assert requests(samples, "GET", "/v1/models/{model_id:path}", 200) == 1
    assert requests(samples, "GET", "/v1/models/{model_id:path}", 404) == 1  # never the raw path
    assert requests(samples, "GET", "", 404) == 1  # no route: OpenTelemetry omits http.route
    assert requests(samples, "GET", CHAT, 405) == 1
    assert requests(samples, "POST", CHAT, 200) == 1
    assert requests(samples, "POST", CHAT, 400) == 1
    assert seconds(samples, "POST", CHAT, 200) > 0
    assert active(samples, "POST", CHAT) == 0


def test_a_stream_counts_until_its_last_event_and_a_client_that_left_as_499(
    replica: ServerThread,
) -> None:
    route = "/v1/completions"
    body = {"model": replica.settings.model, "prompt": "Once", "stream": True}
    body |= {"max_tokens": 32, "min_tokens": 32}
    url = f"{replica.http_url}/completions"
    proof = {SECRET_HEADER: SECRET}
    with httpx.stream("POST", url, json=body, headers=proof, timeout=120) as reply:
        lines = reply.iter_lines()  # one iterator: a dropped one closes the response
        next(lines)
        assert active(scrape(replica), "POST", route) == 1  # open while the stream is
        assert [line for line in lines if line][-1] == "data: [DONE]"
    long = {**body, "max_tokens": 400, "min_tokens": 400}
    with httpx.stream("POST", url, json=long, headers=proof, timeout=120) as reply:
        events = (line for line in reply.iter_lines() if line.startswith("data:"))
        for _ in range(3):  # the stream is under way; then the client leaves
            next(events)
    deadline = time.monotonic() + 60
    while active(scrape(replica), "POST", route) and time.monotonic() < deadline:
        time.sleep(0.1)
    samples = scrape(replica)
    assert active(samples, "POST", route) == 0
    assert requests(samples, "POST", route, 200) == 1
    assert requests(samples, "POST", route, 499) == 1
