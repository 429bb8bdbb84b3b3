"""Each program's settings are the parts it reads, and every setting lives in exactly one part."""

from __future__ import annotations

import pytest

from seseragi.settings import (
    EdgeSettings,
    ServerSettings,
    ServeSettings,
    Settings,
    WorkerSettings,
)
from seseragi.settings.reference import PARTS

pytestmark = pytest.mark.unit


def test_every_setting_is_defined_in_exactly_one_part() -> None:
    names = [name for part in PARTS for name in part.model_fields]
    assert len(names) == len(set(names))
    assert set(names) == set(Settings.model_fields)


def test_the_worker_reads_no_api_or_edge_setting() -> None:
    worker = set(WorkerSettings.model_fields)
    assert not worker & set(ServerSettings.model_fields)
    assert not worker & set(EdgeSettings.model_fields)
    assert set(ServeSettings.model_fields) == worker | set(ServerSettings.model_fields)


def test_a_program_reads_its_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SESERAGI_PORT", "50061")
    monkeypatch.setenv("SESERAGI_JOB_CONCURRENCY", "2")
    monkeypatch.setenv("SESERAGI_EDGE_PORT", "8081")
    assert ServeSettings().port == 50061
    assert WorkerSettings().job_concurrency == 2
    assert Settings().edge_port == 8081
    assert Settings().address == "127.0.0.1:50061"
