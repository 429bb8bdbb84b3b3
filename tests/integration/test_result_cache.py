"""The result cache against a real Redis and the real model."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
import redis

from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc
from tests.helpers import CAPITAL_QUESTION, as_stream, chat, read_stream
from tests.integration.test_telemetry import scrape, value
from tests.redis_servers import PrivateRedis
from tests.servers import TEST_EDGE_SECRET, ServerThread, as_caller, make_settings

pytestmark = pytest.mark.integration
GET = (("operation", "get"),)


@pytest.fixture(scope="module")
def cached_server(loaded_model: LoadedModel) -> Iterator[ServerThread]:
    with ServerThread(make_settings(result_cache=True), loaded_model) as running:
        yield running


@pytest.fixture
def cached_stub(cached_server: ServerThread) -> Iterator[generation_pb2_grpc.GenerationServiceStub]:
    with grpc.insecure_channel(cached_server.target) as channel:
        yield generation_pb2_grpc.GenerationServiceStub(channel)


def generate(
    stub: generation_pb2_grpc.GenerationServiceStub, request: pb.GenerateRequest
) -> tuple[pb.GenerateResponse, str]:
    """The response and the `x-seseragi-cache` header."""
    response, call = stub.Generate.with_call(request, timeout=120)
    headers = dict(call.initial_metadata())
    return response, headers["x-seseragi-cache"]


def test_greedy_miss_then_hit(cached_stub: generation_pb2_grpc.GenerationServiceStub) -> None:
    request = chat(f"{CAPITAL_QUESTION} (miss then hit)", max_new_tokens=12)
    first, first_header = generate(cached_stub, request)
    second, second_header = generate(cached_stub, request)
    assert (first_header, first.cached) == ("miss", False)
    assert (second_header, second.cached) == ("hit", True)
    assert second.text == first.text and second.token_ids == first.token_ids
    assert second.usage == first.usage and second.stop_reason == first.stop_reason
    assert second.request_id != first.request_id


def test_stream_hit_still_streams_started_deltas_final(
    cached_stub: generation_pb2_grpc.GenerationServiceStub,
) -> None:
    request = chat("Name a colour. (stream hit)", max_new_tokens=10)
    ran, _ = generate(cached_stub, request)
    streamed = read_stream(cached_stub.GenerateStream(as_stream(request), timeout=120))
    assert streamed.kinds[0] == "started" and streamed.kinds[-1] == "final"
    assert "delta" in streamed.kinds
    assert streamed.final is not None and streamed.final.cached
    assert streamed.text == ran.text
    assert [t for d in streamed.deltas for t in d.token_ids] == list(ran.token_ids)


def test_a_stream_fills_the_cache_for_generate(
    cached_stub: generation_pb2_grpc.GenerationServiceStub,
) -> None:
    request = chat("Say hello. (stream fills)", max_new_tokens=8)
    streamed = read_stream(cached_stub.GenerateStream(as_stream(request), timeout=120))
    assert streamed.final is not None and not streamed.final.cached
    response, header = generate(cached_stub, request)
    assert header == "hit" and response.text == streamed.text


def test_unseeded_sampling_is_never_cached(
    cached_stub: generation_pb2_grpc.GenerationServiceStub,
) -> None:
    request = chat("Tell me a word. (unseeded)", max_new_tokens=6, temperature=0.8)
    for _ in range(2):
        response, header = generate(cached_stub, request)
        assert (header, response.cached) == ("bypass", False)


def test_seeded_sampling_is_cached(cached_stub: generation_pb2_grpc.GenerationServiceStub) -> None:
    request = chat("Tell me a word. (seeded)", max_new_tokens=6, temperature=0.8)
    request.sampling.seed = 1234
    first, _ = generate(cached_stub, request)
    second, header = generate(cached_stub, request)
    assert header == "hit" and second.text == first.text and second.seed == 1234
    request.sampling.seed = 1235
    _, other_seed = generate(cached_stub, request)
    assert other_seed == "miss"


@pytest.mark.parametrize(
    "change",
    [
        lambda r: setattr(r.stopping, "max_new_tokens", 7),
        lambda r: r.stopping.stop_sequences.append("."),
        lambda r: setattr(r.sampling, "repetition_penalty", 1.2),
        lambda r: setattr(r.options, "logprobs", True),
        lambda r: setattr(r.messages[0], "content", "Name a fruit, please."),
    ],
    ids=["max_new_tokens", "stop_sequences", "repetition_penalty", "logprobs", "input"],
)
def test_a_different_parameter_misses(
    cached_stub: generation_pb2_grpc.GenerationServiceStub, change: object
) -> None:
    request = chat("Name a fruit.", max_new_tokens=6)
    generate(cached_stub, request)
    assert generate(cached_stub, request)[1] == "hit"
    changed = pb.GenerateRequest()
    changed.CopyFrom(request)
    change(changed)  # type: ignore[operator]
    assert generate(cached_stub, changed)[1] == "miss"


def test_bypass_and_refresh(cached_stub: generation_pb2_grpc.GenerationServiceStub) -> None:
    request = chat("Name an animal. (policies)", max_new_tokens=6)
    generate(cached_stub, request)
    request.cache = pb.CACHE_POLICY_BYPASS
    response, header = generate(cached_stub, request)
    assert (header, response.cached) == ("bypass", False)
    request.cache = pb.CACHE_POLICY_REFRESH
    response, header = generate(cached_stub, request)
    assert (header, response.cached) == ("miss", False)
    request.cache = pb.CACHE_POLICY_UNSPECIFIED
    assert generate(cached_stub, request)[1] == "hit"


def test_redis_down_is_a_miss_and_the_cache_resumes(loaded_model: LoadedModel) -> None:
    private = PrivateRedis()
    private.start()
    settings = make_settings(result_cache=True, redis_url=private.url, job_concurrency=0)
    request = chat("Name a city. (outage)", max_new_tokens=6)
    try:
        with (
            ServerThread(settings, loaded_model) as running,
            grpc.insecure_channel(running.target) as channel,
        ):
            stub = generation_pb2_grpc.GenerationServiceStub(channel)
            expected, _ = generate(stub, request)
            assert generate(stub, request)[1] == "hit"
            private.kill()
            during, header = generate(stub, request)
            assert (header, during.cached) == ("miss", False)
            assert during.text == expected.text
            assert generate(stub, request)[0].text == expected.text
            assert scrape(running)[("seseragi_result_cache_errors_total", GET)] >= 1
            private.start()
            time.sleep(1.5)  # the cache tries Redis again a second after an outage
            assert generate(stub, request)[1] == "miss"  # the new Redis is empty
            assert generate(stub, request)[1] == "hit"
            m = scrape(running)
        # Both calls during the outage were errors (served as misses), whether Redis was tried
        # or skipped while known down.
        for outcome, count in (("hit", 2), ("miss", 2), ("error", 2)):
            assert value(m, "seseragi_result_cache_lookups_total", outcome=outcome) == count
    finally:
        private.kill()


def test_a_cached_answer_serves_only_the_caller_that_caused_it(loaded_model: LoadedModel) -> None:
    settings = make_settings(result_cache=True, edge_secret=TEST_EDGE_SECRET)
    request = chat("Name a planet. (scope)", max_new_tokens=6)
    with (
        ServerThread(settings, loaded_model) as running,
        grpc.insecure_channel(running.target) as channel,
    ):
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        for who, expected in (("alice", "miss"), ("alice", "hit"), ("bob", "miss")):
            _, call = stub.Generate.with_call(request, metadata=as_caller(who), timeout=120)
            assert dict(call.initial_metadata())["x-seseragi-cache"] == expected, who


def test_shared_scope_serves_every_caller(loaded_model: LoadedModel) -> None:
    settings = make_settings(
        result_cache=True, result_cache_scope="shared", edge_secret=TEST_EDGE_SECRET
    )
    request = chat("Name a planet. (shared)", max_new_tokens=6)
    with (
        ServerThread(settings, loaded_model) as running,
        grpc.insecure_channel(running.target) as channel,
    ):
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        for who, expected in (("alice", "miss"), ("bob", "hit")):
            _, call = stub.Generate.with_call(request, metadata=as_caller(who), timeout=120)
            assert dict(call.initial_metadata())["x-seseragi-cache"] == expected, who


def test_entries_live_in_the_cache_database_and_big_ones_are_not_kept(
    loaded_model: LoadedModel,
) -> None:
    private = PrivateRedis()
    private.start()
    prefix = "c:"
    settings = make_settings(
        result_cache=True,
        redis_url=private.url,  # the cache takes database 1 of this server by default
        redis_key_prefix=prefix,
        job_concurrency=0,
        result_cache_max_entry_bytes=200,
    )
    try:
        with (
            ServerThread(settings, loaded_model) as running,
            grpc.insecure_channel(running.target) as channel,
        ):
            stub = generation_pb2_grpc.GenerationServiceStub(channel)
            small = chat("Say yes. (small)", max_new_tokens=2)
            big = chat("Write a long story. (big)", max_new_tokens=60)
            for request in (small, small, big, big):
                generate(stub, request)
            assert generate(stub, small)[1] == "hit"
            assert generate(stub, big)[1] == "miss"  # over 200 bytes: never stored
        jobs_db, cache_db = (redis.Redis(port=private.port, db=db) for db in (0, 1))
        assert len(list(cache_db.scan_iter(f"{prefix}cache:*"))) == 1
        assert not list(jobs_db.scan_iter(f"{prefix}cache:*"))
    finally:
        private.kill()
