"""One row of the report: what a scenario did, what it counted, and whether its rule held."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Outcome:
    scenario: str
    load: str
    must_hold: str
    requests: int = 0
    failed: int = 0
    lost: int | None = None
    duplicated: int | None = None
    recover_s: float | None = None
    passed: bool = False
    detail: str = ""
    duration_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Durations:
    """How long the long rows run; `make chaos` uses the issue's, `--quick` seconds."""

    fuzz_s: float
    soak_s: float
    redis_outage_s: float
    flood_s: float
    jobs: int
    streams: int
    stream_tokens: int

    @classmethod
    def full(cls) -> Durations:
        return cls(
            fuzz_s=600,
            soak_s=1800,
            redis_outage_s=30,
            flood_s=10,
            jobs=50,
            streams=32,
            stream_tokens=48,
        )

    @classmethod
    def quick(cls) -> Durations:
        return cls(
            fuzz_s=20,
            soak_s=30,
            redis_outage_s=5,
            flood_s=5,
            jobs=20,
            streams=16,
            stream_tokens=24,
        )
