"""The Python client against real servers and the real model (greedy, so text is comparable)."""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from seseragi.model.loader import LoadedModel
from seseragi_client import AsyncClient, Client, RetryEvent, RetryPolicy, SeseragiError
from seseragi_client.retry import RetryHook
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import jobs_pb2
from tests.helpers import CAPITAL_QUESTION, read_stream
from tests.redis_servers import delete_keys
from tests.servers import REDIS_TEST_PREFIX, ServerThread, make_settings

pytestmark = pytest.mark.integration
QUESTION = [("user", CAPITAL_QUESTION)]
FAST_RETRY = RetryPolicy(max_attempts=5, initial_backoff_s=0.05, max_backoff_s=0.2)


@pytest.fixture
def client(server: ServerThread) -> Iterator[Client]:
    with Client(server.target, timeout=120) as opened:
        yield opened


def handled(server: ServerThread, method: str, code: str, expected: float = 0.0) -> float:
    """Calls the server ended with `code`, from its own metrics: attempts counted server-side.

    The server counts a call just after its status went out, so a client can see the status
    first: wait (bounded) for the `expected` count, then return what is there."""
    deadline = time.monotonic() + 10
    while _handled(server, method, code) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # and a moment longer, so a count above `expected` shows too
    return _handled(server, method, code)


def _handled(server: ServerThread, method: str, code: str) -> float:
    assert server.running is not None
    labels = {
        "grpc_type": "unary",
        "grpc_service": "seseragi.v1.GenerationService",
        "grpc_method": method,
        "grpc_code": code,
    }
    registry = server.running.telemetry.metrics.registry
    return registry.get_sample_value("grpc_server_handled_total", labels) or 0.0


def test_sync_generate_stream_tokenize_and_model_info(client: Client) -> None:
    unary = client.generate(messages=QUESTION, temperature=0.0, max_new_tokens=24)
    assert "Paris" in unary.text
    streamed = read_stream(client.stream(messages=QUESTION, temperature=0.0, max_new_tokens=24))
    assert streamed.kinds[0] == "started" and streamed.kinds[-1] == "final"
    assert streamed.text == unary.text
    tokens = client.tokenize(messages=QUESTION)
    assert tokens.token_count == len(tokens.token_ids) > 0 and tokens.within_limits
    info = client.model_info()
    assert info.model_id == "smollm2-135m-instruct" and info.limits.max_new_tokens > 0


async def test_async_generate_stream_tokenize_and_model_info(server: ServerThread) -> None:
    async with AsyncClient(server.target, timeout=120) as client:
        unary = await client.generate(messages=QUESTION, temperature=0.0, max_new_tokens=24)
        events = [e async for e in client.stream(messages=QUESTION, temperature=0.0)]
        tokens = await client.tokenize(messages=QUESTION)
        info = await client.model_info()
    streamed = read_stream(events)
    assert "Paris" in unary.text and streamed.text.startswith(unary.text)
    assert streamed.final is not None and streamed.final.stop_reason
    assert tokens.token_count > 0 and info.context_length > 0


def test_invalid_argument_names_the_field_and_is_not_retried(
    client: Client, server: ServerThread
) -> None:
    retries: list[RetryEvent] = []
    with Client(server.target, retry_policy=FAST_RETRY, on_retry=retries.append) as retrying:
        before = _handled(server, "Generate", "INVALID_ARGUMENT")
        with pytest.raises(SeseragiError) as raised:
            retrying.generate("hello", temperature=7.0)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "sampling.temperature" in raised.value.field_violations()
    assert raised.value.reason  # ErrorInfo decoded
    assert retries == []
    assert handled(server, "Generate", "INVALID_ARGUMENT", before + 1) == before + 1


def test_a_stream_error_is_raised_as_seseragi_error(client: Client) -> None:
    with pytest.raises(SeseragiError) as raised:
        list(client.stream("hello", max_new_tokens=0))
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "stopping.max_new_tokens" in raised.value.field_violations()


def test_a_per_call_deadline_ends_the_call(client: Client) -> None:
    with pytest.raises(SeseragiError) as raised:
        client.generate("Tell me a story.", max_new_tokens=400, min_new_tokens=400, timeout=0.5)
    assert raised.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


@pytest.fixture
def loading_server(loaded_model: LoadedModel) -> Iterator[ServerThread]:
    """A server whose port is open while its model is "still loading": it answers UNAVAILABLE."""
    with ServerThread(make_settings(), loaded_model, ready=False) as running:
        yield running


def ready_on_second_retry(server: ServerThread, seen: list[RetryEvent]) -> RetryHook:
    """Record each retry; on the second one the server finishes loading, so attempt 3 succeeds."""

    def hook(event: RetryEvent) -> None:
        seen.append(event)
        if len(seen) == 2:
            server.become_ready()

    return hook


def test_unavailable_while_loading_is_retried_until_served(loading_server: ServerThread) -> None:
    seen: list[RetryEvent] = []
    hook = ready_on_second_retry(loading_server, seen)
    with Client(loading_server.target, retry_policy=FAST_RETRY, on_retry=hook) as client:
        answer = client.generate(messages=QUESTION, temperature=0.0, max_new_tokens=8)
    assert answer.text
    assert [e.attempt for e in seen] == [1, 2]
    assert all(e.error.code == grpc.StatusCode.UNAVAILABLE for e in seen)
    assert seen[0].error.reason == "NOT_SERVING"
    assert handled(loading_server, "Generate", "UNAVAILABLE", 2) == 2
    assert handled(loading_server, "Generate", "OK", 1) == 1


async def test_an_async_stream_is_retried_before_its_first_event(
    loading_server: ServerThread,
) -> None:
    seen: list[RetryEvent] = []
    hook = ready_on_second_retry(loading_server, seen)
    async with AsyncClient(loading_server.target, retry_policy=FAST_RETRY, on_retry=hook) as client:
        events = [e async for e in client.stream(messages=QUESTION, temperature=0.0)]
    streamed = read_stream(events)
    assert streamed.kinds.count("started") == 1 and streamed.final is not None
    assert "Paris" in streamed.text
    assert [e.attempt for e in seen] == [1, 2]


def test_retries_give_up_with_the_last_unavailable(loading_server: ServerThread) -> None:
    policy = RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.05)
    with (
        Client(loading_server.target, retry_policy=policy) as client,
        pytest.raises(SeseragiError) as raised,
    ):
        client.model_info()
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE
    assert handled(loading_server, "GetModelInfo", "UNAVAILABLE", 3) == 3


def test_a_stream_cut_after_its_first_event_is_not_retried(loaded_model: LoadedModel) -> None:
    seen: list[RetryEvent] = []
    received: list[pb.GenerateStreamResponse] = []
    running = ServerThread(make_settings(), loaded_model)
    with running, Client(running.target, retry_policy=FAST_RETRY, on_retry=seen.append) as client:
        events = client.stream("Tell me a story.", max_new_tokens=300, min_new_tokens=300)
        received += [next(events), next(events)]
        running.cut_calls()
        with pytest.raises(SeseragiError) as raised:
            received.extend(events)
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE
    assert seen == []  # a retry would have sent `started` and the first tokens again
    assert received[0].HasField("started") and len(received) >= 2


@pytest.fixture(scope="module")
def jobs_server(loaded_model: LoadedModel) -> Iterator[ServerThread]:
    prefix = f"{REDIS_TEST_PREFIX}client-jobs-{secrets.token_hex(3)}:"
    settings = make_settings(redis_key_prefix=prefix, job_concurrency=2)
    with ServerThread(settings, loaded_model) as running:
        yield running
    delete_keys(settings.redis_url, prefix)


def test_jobs_round_trip(jobs_server: ServerThread) -> None:
    key = secrets.token_hex(6)
    with Client(jobs_server.target, timeout=120) as client:
        submitted = client.submit_job(
            messages=QUESTION, temperature=0.0, max_new_tokens=16, idempotency_key=key
        )
        again = client.submit_job(messages=QUESTION, idempotency_key=key)
        job_id = submitted.job.job_id
        watched = read_stream(client.watch_job(job_id))
        job = client.get_job(job_id)
        tail = read_stream(client.watch_job(job_id, from_index=4))
        listed = client.list_jobs(page_size=10)
    assert submitted.created and not again.created and again.job.job_id == job_id
    assert job.state == jobs_pb2.JOB_STATE_SUCCEEDED and "Paris" in job.result.text
    assert watched.text == job.result.text and watched.final is not None
    assert tail.kinds[0] == "started" and tail.deltas[0].generated_token_count > 4
    assert job.result.text.endswith(tail.text) and len(tail.text) < len(watched.text)
    assert job_id in [j.job_id for j in listed.jobs]


async def collect(
    stream: AsyncIterator[pb.GenerateStreamResponse], into: list[pb.GenerateStreamResponse]
) -> None:
    async for event in stream:
        into.append(event)


async def test_async_jobs_cancel_and_not_found(jobs_server: ServerThread) -> None:
    async with AsyncClient(jobs_server.target, timeout=120) as client:
        submitted = await client.submit_job(
            "Tell me a very long story.", max_new_tokens=1000, min_new_tokens=1000
        )
        cancelled = await client.cancel_job(submitted.job.job_id)
        events: list[pb.GenerateStreamResponse] = []
        with pytest.raises(SeseragiError) as ended:
            await collect(client.watch_job(submitted.job.job_id), events)
        with pytest.raises(SeseragiError) as missing:
            await client.get_job("no-such-job")
        listed = await client.list_jobs()
    assert cancelled.state == jobs_pb2.JOB_STATE_CANCELLED
    assert events and events[0].HasField("started")
    assert ended.value.code == grpc.StatusCode.CANCELLED and ended.value.reason == "JOB_CANCELLED"
    assert missing.value.code == grpc.StatusCode.NOT_FOUND
    assert missing.value.reason == "JOB_NOT_FOUND"
    assert submitted.job.job_id in [j.job_id for j in listed.jobs]


def test_watch_job_resumes_on_another_replica_without_repeating_tokens(
    loaded_model: LoadedModel,
) -> None:
    """The watched replica dies mid-stream; the channel's next address serves the rest."""
    prefix = f"{REDIS_TEST_PREFIX}client-watch-{secrets.token_hex(3)}:"
    front = ServerThread(make_settings(redis_key_prefix=prefix, job_concurrency=0), loaded_model)
    runner = ServerThread(make_settings(redis_key_prefix=prefix, job_concurrency=1), loaded_model)
    seen: list[RetryEvent] = []
    with front, runner:
        # pick_first: every call goes to `front` while it is up, then to `runner`.
        target = f"ipv4:{front.target},{runner.target}"
        with Client(target, retry_policy=FAST_RETRY, on_retry=seen.append, timeout=300) as client:
            job_id = client.submit_job("Once upon a time", max_new_tokens=40, temperature=0.0)
            events = client.watch_job(job_id.job.job_id)
            received = list(itertools.islice(events, 4))
            front.cut_calls()
            received += list(events)
            job = client.get_job(job_id.job.job_id)
    delete_keys(front.settings.redis_url, prefix)
    streamed = read_stream(received)
    assert [e.error.code for e in seen] == [grpc.StatusCode.UNAVAILABLE] * len(seen) and seen
    assert streamed.kinds.count("started") == 1 and streamed.final is not None
    counts = [d.generated_token_count for d in streamed.deltas]
    assert counts == sorted(set(counts))  # no token twice
    assert streamed.text == job.result.text and len(job.result.token_ids) == 40


def test_the_old_import_path_still_works(server: ServerThread) -> None:
    from seseragi_client.client import Client as OldClient
    from seseragi_client.client import build_request

    with OldClient(server.target) as client:
        response = client.generate(build_request(prompt="Hi", max_new_tokens=2))
    assert isinstance(response, pb.GenerateResponse) and response.text
