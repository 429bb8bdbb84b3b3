"""The RPC tracing interceptor's side effects on logging."""

from __future__ import annotations

import contextvars
import logging

import pytest
from opentelemetry import context
from opentelemetry.sdk.trace import TracerProvider

from seseragi.telemetry.tracing import rpc_interceptor

pytestmark = pytest.mark.unit


def test_a_token_detached_in_another_context_logs_nothing_but_other_errors_still_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What a cancelled stream does: its span's context token is reset from another context."""
    rpc_interceptor(TracerProvider())
    token = contextvars.copy_context().run(context.attach, context.get_current())
    with caplog.at_level(logging.DEBUG, logger="opentelemetry.context"):
        context.detach(token)  # OpenTelemetry catches the ValueError and logs it
        logging.getLogger("opentelemetry.context").error("something else")
    assert [record.getMessage() for record in caplog.records] == ["something else"]
