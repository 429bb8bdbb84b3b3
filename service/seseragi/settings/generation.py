"""What one generation may ask, its defaults, and how long a running one is given.

Read by every process that runs generations: `seseragi serve` and `seseragi worker`.
"""

from __future__ import annotations

from pydantic import Field

from seseragi.settings.base import SeseragiSettings


class GenerationSettings(SeseragiSettings):
    max_input_tokens: int = Field(2048, ge=1, description="Most tokens in a rendered input.")
    max_new_tokens: int = Field(1024, ge=1, description="Largest max_new_tokens a request may ask.")
    default_max_new_tokens: int = Field(128, ge=1, description="max_new_tokens when unset.")
    default_temperature: float = Field(0.7, ge=0.0, le=2.0, description="Temperature when unset.")
    max_stop_sequences: int = Field(8, ge=0, description="Most stop sequences per request.")
    max_stop_sequence_length: int = Field(
        64, ge=1, description="Most characters per stop sequence."
    )
    max_top_logprobs: int = Field(20, ge=0, description="Most alternatives per token.")
    heartbeat_interval_seconds: float = Field(
        5.0, gt=0, description="Heartbeat period on an otherwise idle stream."
    )
    shutdown_grace_seconds: float = Field(
        30.0, ge=0, description="How long in-flight calls may finish after SIGTERM."
    )
