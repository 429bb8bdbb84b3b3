"""OpenAI's error JSON and HTTP status, from the same table as the gRPC statuses."""

from __future__ import annotations

import json

import pytest

from seseragi.api.errors import FieldViolation, InvalidRequest, NotReady
from seseragi.api.http.errors import from_exception
from seseragi.api.limits import CallerLimitReached
from seseragi.engine.errors import EngineFull

pytestmark = pytest.mark.unit


def answer(exc: Exception) -> tuple[int, dict[str, object], dict[str, str]]:
    response = from_exception(exc, "req-1")
    body = json.loads(bytes(response.body))
    return response.status_code, body["error"], dict(response.headers)


def test_invalid_argument_is_400_naming_the_openai_parameter() -> None:
    status, error, _ = answer(
        InvalidRequest(
            [FieldViolation("sampling.temperature", "must be in [0, 2]", "OUT_OF_RANGE")]
        )
    )
    assert status == 400
    assert error == {
        "message": "temperature: must be in [0, 2]",
        "type": "invalid_request_error",
        "param": "temperature",
        "code": "out_of_range",
    }


def test_input_too_long_is_413() -> None:
    status, error, _ = answer(
        InvalidRequest([FieldViolation("prompt", "input is 9 tokens", "INPUT_TOO_LONG")])
    )
    assert status == 413 and error["param"] == "prompt" and error["code"] == "input_too_long"


def test_engine_full_is_429_with_retry_after_rounded_up() -> None:
    status, error, headers = answer(EngineFull(4, 2, 1.5))
    assert status == 429 and headers["retry-after"] == "2" and error["code"] == "engine_full"


def test_caller_limit_is_429_with_retry_after() -> None:
    status, _, headers = answer(CallerLimitReached("too many", "CALLER_LIMIT"))
    assert status == 429 and headers["retry-after"] == "1"


def test_not_ready_is_503() -> None:
    status, error, _ = answer(NotReady("the model is still loading"))
    assert status == 503 and error["type"] == "service_unavailable"


def test_internal_error_hides_the_cause() -> None:
    status, error, _ = answer(RuntimeError("secret detail"))
    assert status == 500 and "secret" not in str(error["message"])
    assert "req-1" in str(error["message"])
