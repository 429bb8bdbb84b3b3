"""The engine observer that turns engine events into Prometheus samples.

Runs on the engine thread: each call is a few counter or histogram updates, nothing more.
"""

from __future__ import annotations

from seseragi.engine.errors import DeadlineExpired, EngineStopped, ModelFailure
from seseragi.engine.sequence import Sequence
from seseragi.engine.types import Finished, StopReason
from seseragi.telemetry.metrics import PHASES, Metrics

FAILURE_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (DeadlineExpired, "deadline_expired"),
    (ModelFailure, "model_failure"),
    (EngineStopped, "shutdown"),
)


def failure_reason(error: Exception) -> str:
    for kind, reason in FAILURE_REASONS:
        if isinstance(error, kind):
            return reason
    return "internal"


def phase_of(seq: Sequence) -> str:
    """Where a sequence was when it left: one of PHASES."""
    if seq.scheduled_time is None:
        return "queued"
    return "prefill" if seq.first_token_time is None else "decode"


class EngineMetrics:
    """Implements `seseragi.engine.observer.EngineObserver`."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics
        self._batch_size = {p: metrics.batch_size.labels(p) for p in ("prefill", "decode")}
        self._forward_time = {p: metrics.forward_time.labels(p) for p in ("prefill", "decode")}
        # Every label value exists from the start, so a dashboard shows 0 rather than nothing.
        for stop_reason in StopReason:
            metrics.finished.labels(stop_reason.value)
        for failure in (*(name for _, name in FAILURE_REASONS), "internal"):
            metrics.failed.labels(failure)
        for phase in PHASES:
            metrics.cancelled.labels(phase)

    def forward_done(self, phase: str, batch: list[Sequence], seconds: float) -> None:
        self._batch_size[phase].observe(len(batch))
        self._forward_time[phase].observe(seconds)
        self._m.generation_tokens.inc(len(batch))
        if phase == "prefill":
            self._m.prompt_tokens.inc(sum(seq.prompt_len for seq in batch))

    def token(self, seq: Sequence, now: float) -> None:
        if seq.last_token_time is None:
            self._m.time_to_first_token.observe(now - seq.arrival_time)
        else:
            self._m.inter_token_latency.observe(now - seq.last_token_time)

    def finished(self, seq: Sequence, event: Finished) -> None:
        timings = event.timings
        self._m.e2e_latency.observe(timings.total_s)
        self._m.queue_time.observe(timings.queue_s)
        self._m.prefill_time.observe(timings.time_to_first_token_s - timings.queue_s)
        self._m.decode_time.observe(timings.decode_s)
        self._m.finished.labels(event.stop_reason.value).inc()

    def failed(self, seq: Sequence, error: Exception) -> None:
        self._m.failed.labels(failure_reason(error)).inc()

    def cancelled(self, seq: Sequence) -> None:
        self._m.cancelled.labels(phase_of(seq)).inc()
