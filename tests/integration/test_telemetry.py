"""Metrics, spans and access logs of a real server after a known sequence of calls."""

from __future__ import annotations

import logging
import secrets
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from seseragi.api.identity import SUBJECT_HEADER
from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc, jobs_pb2, jobs_pb2_grpc
from tests.helpers import as_stream, chat, read_stream
from tests.servers import REDIS_TEST_PREFIX, ServerThread, make_settings

pytestmark = pytest.mark.integration
SERVICE = "seseragi.v1.GenerationService"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN_ID = "b7ad6b7169203331"
SECRET_PROMPT = "zebra-cobalt-7781 is my secret"


@pytest.fixture(scope="module")
def one_slot_server(loaded_model: LoadedModel) -> Iterator[ServerThread]:
    """One running slot, so a second stream must queue; no heartbeats to blur message counts.

    The result cache is on, under keys of this module's own, so exactly one call below hits.
    """
    settings = make_settings(
        max_running_requests=1,
        heartbeat_interval_seconds=600,
        result_cache=True,
        redis_key_prefix=f"{REDIS_TEST_PREFIX}telemetry-{secrets.token_hex(3)}:",
    )
    with ServerThread(settings, loaded_model) as server:
        yield server


@pytest.fixture(scope="module")
def spans(one_slot_server: ServerThread) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    assert one_slot_server.running is not None
    provider = one_slot_server.running.telemetry.tracer_provider
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def scrape(server: ServerThread) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    assert server.running is not None
    port = server.running.telemetry.metrics_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_idle(server: ServerThread) -> None:
    deadline = time.monotonic() + 60
    while server.stats().in_flight and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats().in_flight == 0


def test_known_calls_give_exact_metrics(
    one_slot_server: ServerThread, spans: InMemorySpanExporter
) -> None:
    with grpc.insecure_channel(one_slot_server.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        unary = stub.Generate(chat("Say hello.", max_new_tokens=4))
        cached = stub.Generate(chat("Say hello.", max_new_tokens=4))  # the one cache hit
        assert cached.cached and cached.text == unary.text
        with pytest.raises(grpc.RpcError) as rejected:
            stub.Generate(chat("Say hello.", max_new_tokens=4, min_new_tokens=9))
        assert rejected.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        running = stub.GenerateStream(as_stream(chat("Count to fifty.", max_new_tokens=24)))
        messages = [
            next(running),
            next(running),
        ]  # started, then the first delta: it holds the slot
        assert messages[1].WhichOneof("event") == "delta"
        queued = stub.GenerateStream(as_stream(chat("Tell a story.", max_new_tokens=8)))
        started = next(queued)
        assert started.started.queue_position == 1
        queued.cancel()
        messages += list(running)
        streamed = read_stream(messages)
        assert streamed.final is not None
    wait_idle(one_slot_server)
    m = scrape(one_slot_server)

    def grpc_value(name: str, method: str, **labels: str) -> float:
        kind = "unary" if method == "Generate" else "server_stream"
        return value(m, name, grpc_type=kind, grpc_service=SERVICE, grpc_method=method, **labels)

    assert grpc_value("grpc_server_started_total", "Generate") == 3
    assert grpc_value("grpc_server_handled_total", "Generate", grpc_code="OK") == 2
    assert grpc_value("grpc_server_handled_total", "Generate", grpc_code="INVALID_ARGUMENT") == 1
    assert grpc_value("grpc_server_handling_seconds_count", "Generate") == 3
    assert grpc_value("grpc_server_msg_sent_total", "Generate") == 2
    assert grpc_value("grpc_server_started_total", "GenerateStream") == 2
    assert grpc_value("grpc_server_handled_total", "GenerateStream", grpc_code="OK") == 1
    assert grpc_value("grpc_server_handled_total", "GenerateStream", grpc_code="CANCELLED") == 1
    assert grpc_value("grpc_server_msg_sent_total", "GenerateStream") == len(messages) + 1
    assert grpc_value("grpc_server_streams_in_flight", "GenerateStream") == 0

    # Looked up: the first unary call, its repeat, and both streams (the rejected call is not).
    lookups = "seseragi_result_cache_lookups_total"
    assert value(m, lookups, outcome="hit") == 1
    assert value(m, lookups, outcome="miss") == 3
    assert value(m, lookups, outcome="error") == 0
    assert value(m, "seseragi_result_cache_errors_total", operation="get") == 0
    assert value(m, "seseragi_result_cache_errors_total", operation="set") == 0

    finals = [unary, streamed.final]  # the cache hit never reached the engine
    outputs = [f.usage.output_tokens for f in finals]
    assert value(m, "seseragi_prompt_tokens_total") == sum(f.usage.input_tokens for f in finals)
    assert value(m, "seseragi_generation_tokens_total") == sum(outputs)
    stop_reasons = Counter(pb.StopReason.Name(f.stop_reason) for f in finals)
    for name, count in stop_reasons.items():
        reason = name.removeprefix("STOP_REASON_").lower()
        assert value(m, "seseragi_requests_finished_total", stop_reason=reason) == count
    assert value(m, "seseragi_requests_cancelled_total", phase="queued") == 1
    assert value(m, "seseragi_requests_cancelled_total", phase="decode") == 0
    for histogram in ("time_to_first_token", "e2e_request_latency", "request_queue_time"):
        assert value(m, f"seseragi_{histogram}_seconds_count") == 2
    assert value(m, "seseragi_inter_token_latency_seconds_count") == sum(outputs) - 2
    assert value(m, "seseragi_batch_size_requests_count", phase="prefill") == 2
    assert value(m, "seseragi_batch_size_requests_count", phase="decode") == sum(outputs) - 2
    assert value(m, "seseragi_num_requests_running") == 0
    assert value(m, "seseragi_num_requests_waiting") == 0
    assert value(m, "seseragi_ready") == 1
    assert sum(v for (name, _), v in m.items() if name == "seseragi_requests_failed_total") == 0
    assert sum(v for (name, _), v in m.items() if name == "seseragi_model_info") == 1


def test_span_continues_traceparent_with_engine_phases(
    one_slot_server: ServerThread, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    traceparent = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"
    with grpc.insecure_channel(one_slot_server.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        response = stub.Generate(
            chat("Say hello.", max_new_tokens=3), metadata=(("traceparent", traceparent),)
        )
    finished = _wait_for_spans(spans, f"/{SERVICE}/Generate")
    rpc = finished[f"/{SERVICE}/Generate"]
    assert format(rpc.context.trace_id, "032x") == TRACE_ID
    assert rpc.parent is not None and format(rpc.parent.span_id, "016x") == PARENT_SPAN_ID
    assert rpc.attributes is not None
    assert rpc.attributes["gen_ai.usage.output_tokens"] == response.usage.output_tokens
    assert rpc.attributes["gen_ai.usage.input_tokens"] == response.usage.input_tokens
    phases = [finished[name] for name in ("queue_wait", "prefill", "decode")]
    for phase in phases:
        assert phase.parent is not None and phase.parent.span_id == rpc.context.span_id
        assert phase.start_time is not None and phase.end_time is not None
        assert phase.start_time <= phase.end_time
    assert [p.start_time for p in phases] == sorted(p.start_time or 0 for p in phases)
    lookup = finished["cache lookup"]
    assert lookup.parent is not None and lookup.parent.span_id == rpc.context.span_id
    assert lookup.attributes is not None and lookup.attributes["seseragi.cache.outcome"] == "miss"


def test_error_details_and_access_log_carry_the_trace_id(
    one_slot_server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    traceparent = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"
    caplog.set_level(logging.INFO, logger="seseragi.access")
    with grpc.insecure_channel(one_slot_server.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        stub.Generate(chat(SECRET_PROMPT, max_new_tokens=2))
        with pytest.raises(grpc.RpcError) as rejected:
            stub.Generate(
                chat("x", max_new_tokens=2, min_new_tokens=5),
                metadata=(("traceparent", traceparent),),
            )
    details = dict(rejected.value.trailing_metadata() or ())["grpc-status-details-bin"]
    assert TRACE_ID.encode() in details
    deadline = time.monotonic() + 10
    while len(caplog.records) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    ok, failed = caplog.records[-2:]
    assert vars(ok)["status"] == "OK" and vars(ok)["output_tokens"] == 2
    assert vars(failed)["status"] == "INVALID_ARGUMENT"
    assert vars(failed)["trace_id"] == TRACE_ID
    assert all(SECRET_PROMPT not in str(vars(record)) for record in caplog.records)


def test_job_metrics_after_a_known_sequence(one_slot_server: ServerThread) -> None:
    """Two jobs submitted (one twice, by idempotency key): one succeeds, one is cancelled."""
    owner = ((SUBJECT_HEADER, "telemetry"),)
    with grpc.insecure_channel(one_slot_server.target) as channel:
        jobs = jobs_pb2_grpc.JobServiceStub(channel)
        short = jobs_pb2.SubmitJobRequest(
            request=chat("Say hi.", max_new_tokens=3), idempotency_key="once"
        )
        job_id = jobs.SubmitJob(short, metadata=owner).job.job_id
        assert jobs.SubmitJob(short, metadata=owner).job.job_id == job_id  # not a new job
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job = jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job_id), metadata=owner).job
            if job.state == jobs_pb2.JOB_STATE_SUCCEEDED:
                break
            time.sleep(0.1)
        assert job.state == jobs_pb2.JOB_STATE_SUCCEEDED
        long = chat("Count to a hundred.", max_new_tokens=64, min_new_tokens=64)
        doomed = jobs.SubmitJob(jobs_pb2.SubmitJobRequest(request=long), metadata=owner).job
        cancelled = jobs.CancelJob(jobs_pb2.CancelJobRequest(job_id=doomed.job_id), metadata=owner)
        assert cancelled.job.state == jobs_pb2.JOB_STATE_CANCELLED
    wait_idle(one_slot_server)
    deadline = time.monotonic() + 30  # the queue depth is sampled every few seconds
    while time.monotonic() < deadline:
        m = scrape(one_slot_server)
        if value(m, "seseragi_job_queue_depth_jobs") == 0:
            break
        time.sleep(0.2)
    assert value(m, "seseragi_job_queue_depth_jobs") == 0
    assert value(m, "seseragi_job_queue_capacity_jobs") == one_slot_server.settings.max_queued_jobs
    assert value(m, "seseragi_jobs_submitted_total") == 2
    assert value(m, "seseragi_jobs_ended_total", state="succeeded") == 1
    assert value(m, "seseragi_jobs_ended_total", state="cancelled") == 1
    assert value(m, "seseragi_jobs_ended_total", state="failed") == 0
    assert value(m, "seseragi_job_reclaims_total") == 0


def _wait_for_spans(exporter: InMemorySpanExporter, name: str) -> dict[str, ReadableSpan]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        finished = {span.name: span for span in exporter.get_finished_spans()}
        if name in finished:
            return finished
        time.sleep(0.05)
    raise AssertionError(f"no span named {name}")


def test_prefix_cache_counters_count_a_repeated_prompt(server: ServerThread) -> None:
    question = "Explain in one sentence why rivers murmur over stones. " * 3
    before = scrape(server)
    with grpc.insecure_channel(server.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        first = stub.Generate(chat(question, max_new_tokens=2))
        second = stub.Generate(chat(question, max_new_tokens=2))
    assert first.text == second.text
    after = scrape(server)
    prompt = first.usage.input_tokens

    def moved(name: str) -> float:
        return value(after, name) - value(before, name)

    assert moved("seseragi_prefix_cache_queries_total") == 2 * prompt
    # The repeat finds every full block of its prompt except the one holding its last token.
    assert moved("seseragi_prefix_cache_hits_total") >= (prompt - 1) // 16 * 16
    assert 0 <= value(after, "seseragi_kv_cache_usage_ratio") <= 1
