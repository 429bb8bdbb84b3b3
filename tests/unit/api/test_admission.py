"""A replica refuses a call beyond its engine's capacity before parsing it (fast RESOURCE_EXHAUSTED
for a crowd), and a finished call gives its slot back."""

from __future__ import annotations

import pytest

from seseragi.api.generations import Generations
from seseragi.api.limits import CallerLimitReached
from seseragi.config import Settings
from seseragi.engine.errors import EngineFull

pytestmark = pytest.mark.unit


def test_calls_beyond_running_plus_queued_are_refused_until_one_ends() -> None:
    generations = Generations(Settings(max_running_requests=2, max_queued_requests=1))
    releases = [generations.hold_slot(f"caller-{i}") for i in range(3)]
    with pytest.raises(EngineFull):
        generations.hold_slot("caller-3")
    releases.pop()()
    generations.hold_slot("caller-3")


def test_a_caller_refused_by_its_own_cap_takes_no_replica_slot() -> None:
    settings = Settings(max_running_requests=1, max_queued_requests=1, max_requests_per_caller=1)
    generations = Generations(settings)
    generations.hold_slot("alice")
    with pytest.raises(CallerLimitReached):
        generations.hold_slot("alice")
    generations.hold_slot("bob")
