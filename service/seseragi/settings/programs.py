"""The settings of each program, composed from the parts it reads.

pydantic lists the fields of the last base first, so bases are written from the last part to
the first; `serve --help` and docs/settings.md then read server, generation, engine, jobs,
telemetry.
"""

from __future__ import annotations

from pathlib import Path

from seseragi.settings.edge import EdgeSettings
from seseragi.settings.engine import EngineSettings
from seseragi.settings.generation import GenerationSettings
from seseragi.settings.jobs import JobsSettings
from seseragi.settings.server import ServerSettings
from seseragi.settings.telemetry import TelemetrySettings


class WorkerSettings(TelemetrySettings, JobsSettings, EngineSettings, GenerationSettings):
    """`seseragi worker`: runs queued jobs, binds no API port."""


class ServeSettings(WorkerSettings, ServerSettings):
    """`seseragi serve`: a worker (engine, jobs, telemetry) with the API in front of it."""


class Settings(EdgeSettings, ServeSettings):
    """Everything: the edge tooling (`stack`, `envoy render`, `token`) starts or configures
    every program, and tests build servers from it."""

    @property
    def edge_dir(self) -> Path:
        """Where the dev key and rendered Envoy configuration live."""
        return self.cache_dir / "edge"
