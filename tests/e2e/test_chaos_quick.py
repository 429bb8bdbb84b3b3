"""Short versions of the fault suite's rows that no other test covers, on the suite's own stack
(`chaos.stack`: AOF Redis, two replica processes, Envoy, job workers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.outcome import Durations
from chaos.scenarios import redis_outage, redis_restart, replica_kill
from chaos.stack import Stack

pytestmark = pytest.mark.e2e
SHORT = Durations(
    fuzz_s=0, soak_s=0, redis_outage_s=2, flood_s=0, jobs=6, streams=6, stream_tokens=16
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(Path(tmp_path_factory.mktemp("chaos"))) as running:
        yield running


def test_a_sigkilled_replica_fails_only_its_streams_and_no_unary_call(stack: Stack) -> None:
    outcome = replica_kill.run(stack, SHORT)
    stack.heal()
    assert outcome.passed, outcome.detail


def test_a_redis_restart_loses_no_job_and_stops_no_stream(stack: Stack) -> None:
    outcome = redis_restart.run(stack, SHORT)
    stack.heal()
    assert (outcome.lost, outcome.duplicated, outcome.failed) == (0, 0, 0), outcome.detail
    assert outcome.passed, outcome.detail


def test_jobs_are_unavailable_while_redis_is_frozen_then_resume(stack: Stack) -> None:
    outcome = redis_outage.run(stack, SHORT)
    stack.heal()
    assert "UNAVAILABLE" in outcome.detail and (outcome.lost, outcome.failed) == (0, 0)
    assert outcome.passed, outcome.detail
