"""Log lines are JSON objects that carry the trace id of the span they were written in."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from seseragi.logs import JsonFormatter

pytestmark = pytest.mark.unit


def record(message: str, **extra: object) -> logging.LogRecord:
    entry = logging.makeLogRecord({"msg": message, "levelname": "INFO", "name": "t"})
    entry.__dict__.update(extra)
    return entry


def test_a_line_is_one_json_object_with_extras() -> None:
    line = JsonFormatter().format(record("rpc finished", status="OK", output_tokens=3))
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["event"] == "rpc finished" and entry["status"] == "OK"
    assert entry["output_tokens"] == 3 and "trace_id" not in entry


def test_the_current_trace_id_is_added() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("call") as span:
        entry = json.loads(JsonFormatter().format(record("inside a call")))
    assert entry["trace_id"] == format(span.get_span_context().trace_id, "032x")
