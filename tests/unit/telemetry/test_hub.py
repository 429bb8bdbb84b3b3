"""What a finished generation adds to the access log: counts always, text only when enabled."""

from __future__ import annotations

import contextvars

import pytest

from seseragi.config import Settings
from seseragi.engine.types import Finished, StopReason, Timings
from seseragi.telemetry import calls
from seseragi.telemetry.hub import Telemetry
from tests.unit.engine.test_scheduler import make_seq

pytestmark = pytest.mark.unit
TIMINGS = Timings(queue_s=0.0, time_to_first_token_s=0.5, decode_s=1.0, total_s=1.5)


def finish(log_prompts: bool) -> dict[str, object]:
    telemetry = Telemetry.start(Settings(metrics_port=-1, log_prompts=log_prompts))
    seq = make_seq(1, prompt_len=3)
    seq.output_token_ids = [7, 8]
    event = Finished(StopReason.MAX_TOKENS, "", 3, 2, TIMINGS)

    def call() -> dict[str, object]:
        record = calls.begin("/seseragi.v1.GenerationService/Generate", "alice")
        telemetry.generation_finished(seq, event, lambda ids: "text of " + str(ids))
        return record.fields

    try:
        return contextvars.copy_context().run(call)
    finally:
        telemetry.stop()


def test_counts_and_times_without_text_by_default() -> None:
    fields = finish(log_prompts=False)
    assert fields["input_tokens"] == 3 and fields["output_tokens"] == 2
    assert fields["stop_reason"] == "max_tokens" and fields["total_s"] == 1.5
    assert "prompt" not in fields and "output" not in fields


def test_text_only_when_enabled() -> None:
    fields = finish(log_prompts=True)
    assert fields["prompt"] == "text of [0, 1, 2]" and fields["output"] == "text of [7, 8]"
