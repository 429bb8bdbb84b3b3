"""Engine events become the right samples: TTFT once, one gap per later token, phases named."""

from __future__ import annotations

import pytest

from seseragi.engine.errors import DeadlineExpired, EngineStopped, ModelFailure
from seseragi.engine.types import Finished, StopReason, Timings
from seseragi.telemetry.engine_metrics import EngineMetrics, failure_reason, phase_of
from seseragi.telemetry.metrics import Metrics
from tests.unit.engine.test_scheduler import make_seq

pytestmark = pytest.mark.unit


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(latency_buckets=(0.5, 1.0, 2.0), token_gap_buckets=(0.1, 0.3, 1.0))


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_first_token_is_ttft_and_later_tokens_are_gaps(metrics: Metrics) -> None:
    observer = EngineMetrics(metrics)
    seq = make_seq(1, prompt_len=5)
    observer.forward_done("prefill", [seq], 0.9)
    observer.token(seq, 1.0)
    seq.first_token_time = seq.last_token_time = 1.0
    observer.forward_done("decode", [seq], 0.2)
    observer.token(seq, 1.25)
    seq.last_token_time = 1.25
    observer.token(seq, 1.45)
    assert sample(metrics, "seseragi_time_to_first_token_seconds_count") == 1
    assert sample(metrics, "seseragi_time_to_first_token_seconds_sum") == 1.0
    assert sample(metrics, "seseragi_inter_token_latency_seconds_count") == 2
    assert sample(metrics, "seseragi_inter_token_latency_seconds_bucket", le="0.3") == 2
    assert sample(metrics, "seseragi_prompt_tokens_total") == 5
    assert sample(metrics, "seseragi_generation_tokens_total") == 2
    assert sample(metrics, "seseragi_batch_size_requests_count", phase="decode") == 1


def test_finished_splits_time_into_queue_prefill_decode(metrics: Metrics) -> None:
    observer = EngineMetrics(metrics)
    timings = Timings(queue_s=0.25, time_to_first_token_s=1.0, decode_s=2.0, total_s=3.0)
    observer.finished(make_seq(1), Finished(StopReason.MAX_TOKENS, "", 4, 8, timings))
    assert sample(metrics, "seseragi_request_queue_time_seconds_sum") == 0.25
    assert sample(metrics, "seseragi_request_prefill_time_seconds_sum") == 0.75
    assert sample(metrics, "seseragi_request_decode_time_seconds_sum") == 2.0
    assert sample(metrics, "seseragi_e2e_request_latency_seconds_sum") == 3.0
    assert sample(metrics, "seseragi_requests_finished_total", stop_reason="max_tokens") == 1
    assert sample(metrics, "seseragi_requests_finished_total", stop_reason="time_limit") == 0


def test_cancellations_are_counted_by_phase(metrics: Metrics) -> None:
    observer = EngineMetrics(metrics)
    queued, prefilling, decoding = make_seq(1), make_seq(2), make_seq(3)
    prefilling.scheduled_time = decoding.scheduled_time = 1.0
    decoding.first_token_time = 2.0
    assert [phase_of(s) for s in (queued, prefilling, decoding)] == ["queued", "prefill", "decode"]
    for seq in (queued, decoding, decoding):
        observer.cancelled(seq)
    assert sample(metrics, "seseragi_requests_cancelled_total", phase="queued") == 1
    assert sample(metrics, "seseragi_requests_cancelled_total", phase="prefill") == 0
    assert sample(metrics, "seseragi_requests_cancelled_total", phase="decode") == 2


def test_failures_are_counted_by_reason(metrics: Metrics) -> None:
    observer = EngineMetrics(metrics)
    observer.failed(make_seq(1), DeadlineExpired("late"))
    assert sample(metrics, "seseragi_requests_failed_total", reason="deadline_expired") == 1
    assert failure_reason(ModelFailure("x")) == "model_failure"
    assert failure_reason(EngineStopped("x")) == "shutdown"
    assert failure_reason(RuntimeError("x")) == "internal"
