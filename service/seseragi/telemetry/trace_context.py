"""The trace id in effect, for logs and error details: one failing call, followed end to end."""

from __future__ import annotations

from opentelemetry import trace


def current_trace_id() -> str:
    """The current span's trace id as 32 hex digits, or "" outside a trace."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""
