"""Logs, metrics and traces."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from seseragi.settings.base import SeseragiSettings


class TelemetrySettings(SeseragiSettings):
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Least severity a log record needs to be written."
    )
    log_prompts: bool = Field(
        False, description="Put prompts and generated text in the access log (off: never)."
    )
    metrics_host: str = Field("127.0.0.1", description="Address /metrics binds.")
    metrics_port: int = Field(
        9464, ge=-1, le=65535, description="Port of /metrics (0 picks a free one, -1 disables)."
    )
    metrics_latency_buckets: tuple[float, ...] = Field(
        (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0),
        description="Histogram buckets (seconds) for TTFT, queue, prefill, decode, end to end.",
    )
    metrics_token_gap_buckets: tuple[float, ...] = Field(
        (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5),
        description="Histogram buckets (seconds) for inter-token latency.",
    )
    otlp_endpoint: str = Field(
        "", description="OTLP/gRPC collector for traces, e.g. http://127.0.0.1:4317; empty: none."
    )
