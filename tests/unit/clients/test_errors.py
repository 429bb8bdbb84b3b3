"""Decoding the statuses the server builds (its own error table) into SeseragiError."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from google.rpc import error_details_pb2

from seseragi.api.errors import FieldViolation, InvalidRequest, NotReady, to_status
from seseragi.engine.errors import EngineFull
from seseragi_client import SeseragiError

pytestmark = pytest.mark.unit


def test_invalid_argument_carries_every_field_violation() -> None:
    status = to_status(
        InvalidRequest(
            [
                FieldViolation("sampling.temperature", "must be within [0, 2]", "OUT_OF_RANGE"),
                FieldViolation("stopping.max_new_tokens", "must be at least 1", "OUT_OF_RANGE"),
            ]
        ),
        "req-1",
    )
    error = SeseragiError.from_status(status)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.field_violations() == {
        "sampling.temperature": "must be within [0, 2]",
        "stopping.max_new_tokens": "must be at least 1",
    }
    assert error.reason == "OUT_OF_RANGE"
    info = error.detail(error_details_pb2.ErrorInfo)
    assert info is not None and info.metadata["field"] == "sampling.temperature"
    assert str(error).startswith("INVALID_ARGUMENT: ")


def test_resource_exhausted_carries_retry_info() -> None:
    error = SeseragiError.from_status(to_status(EngineFull(4, 8, 1.5), "req-2"))
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.retry_delay == timedelta(seconds=1.5)
    assert error.reason == "ENGINE_FULL"


def test_not_ready_is_unavailable_with_its_reason() -> None:
    error = SeseragiError.from_status(to_status(NotReady("loading"), "req-3"))
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert error.reason == "NOT_SERVING"
    assert error.field_violations() == {}


def test_internal_errors_name_the_request() -> None:
    error = SeseragiError.from_status(to_status(RuntimeError("boom"), "req-4"))
    assert error.code == grpc.StatusCode.INTERNAL
    request_info = error.detail(error_details_pb2.RequestInfo)
    assert request_info is not None and request_info.request_id == "req-4"
    assert "boom" not in error.message
