"""The one error table: each failure maps to its status code with details, never a stack trace."""

from __future__ import annotations

import pytest
from google.rpc import code_pb2, error_details_pb2

from seseragi.api.errors import FieldViolation, InvalidRequest, NotReady, to_status
from seseragi.engine.errors import DeadlineExpired, EngineFull, EngineStopped, ModelFailure

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (
            InvalidRequest([FieldViolation("prompt", "must not be empty", "EMPTY_PROMPT")]),
            code_pb2.INVALID_ARGUMENT,
        ),
        (EngineFull(running=4, waiting=8, retry_after_s=1.5), code_pb2.RESOURCE_EXHAUSTED),
        (DeadlineExpired("late"), code_pb2.DEADLINE_EXCEEDED),
        (EngineStopped("stopping"), code_pb2.UNAVAILABLE),
        (NotReady("loading"), code_pb2.UNAVAILABLE),
        (ModelFailure("boom"), code_pb2.INTERNAL),
        (ValueError("secret internals"), code_pb2.INTERNAL),
    ],
)
def test_each_error_has_its_code(error: Exception, code: int) -> None:
    assert to_status(error, "req-1").code == code


def test_unexpected_error_hides_internals_and_names_the_request() -> None:
    status = to_status(RuntimeError("secret internals"), "req-42")
    assert "secret" not in status.message
    assert "req-42" in status.message
    info = error_details_pb2.RequestInfo()
    assert any(d.Unpack(info) for d in status.details if d.Is(info.DESCRIPTOR))
    assert info.request_id == "req-42"


def test_engine_full_carries_the_retry_delay() -> None:
    status = to_status(EngineFull(running=4, waiting=8, retry_after_s=1.5), "r")
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in status.details if d.Is(retry.DESCRIPTOR))
    assert retry.retry_delay.seconds == 1
    assert retry.retry_delay.nanos == 500_000_000
