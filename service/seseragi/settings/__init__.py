"""Typed settings, one class per part a program reads (see programs.py for the programs).

Nothing else reads os.environ. A new setting goes into the part whose code reads it; then
`make settings-doc` regenerates docs/settings.md.
"""

from seseragi.settings.edge import EdgeSettings
from seseragi.settings.engine import DEFAULT_MODEL, EngineSettings
from seseragi.settings.generation import GenerationSettings
from seseragi.settings.jobs import JobsSettings
from seseragi.settings.programs import ServeSettings, Settings, WorkerSettings
from seseragi.settings.server import ServerSettings
from seseragi.settings.telemetry import TelemetrySettings

__all__ = [
    "DEFAULT_MODEL",
    "EdgeSettings",
    "EngineSettings",
    "GenerationSettings",
    "JobsSettings",
    "ServeSettings",
    "ServerSettings",
    "Settings",
    "TelemetrySettings",
    "WorkerSettings",
]
